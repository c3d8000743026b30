import Foundation
import Testing

/// A `--seeds` entry may be a DNS name that resolves to several addresses
/// (a Kubernetes headless Service, a round-robin record): the node joins
/// through any of them that answers. The name here comes from /etc/hosts,
/// which the test can write only as root (CI runs so); elsewhere it is
/// skipped.
@Suite(.serialized) struct DNSSeedTests {
    static let hosts = "/etc/hosts"

    /// Root may write /etc/hosts, and 127.0.0.3 is a loopback address here.
    static var canRun: Bool {
        guard access(hosts, W_OK) == 0 else { return false }
        let probe = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard probe >= 0 else { return false }
        defer { close(probe) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.3")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(probe, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    @Test(.enabled(if: canRun, "needs to write /etc/hosts (root) and bind 127.0.0.3"))
    func aSeedNameOfSeveralAddressesJoinsThroughTheOneThatAnswers() async throws {
        let folder = try TemporaryFolder()
        let environment = ["ORDERLY_CLUSTER_SECRET": "integration-test-cluster-secret-\(UUID().uuidString)" as String?]
        try testCertificates(in: folder.path, for: ["api-1", "api-2"])
        // api-1 listens on 127.0.0.3 only; nothing listens on 127.0.0.2.
        let one = try OrderlyProcess(
            ["node", "--id", "api-1", "--data", folder.path, "--http", "127.0.0.1:0", "--peer", "127.0.0.3:0"],
            stderrPath: folder.file("api-1.log"), environment: environment)
        defer { one.stop(signal: SIGKILL) }
        let ready = try await one.readyRecord()
        let peer = try #require(ready["peer"] as? String)
        let port = try #require(peer.split(separator: ":").last.map(String.init))

        // The name resolves to the dead address first, then the live one.
        let name = "orderly-seed-\(UUID().uuidString.prefix(8).lowercased())"
        let original = try String(contentsOfFile: Self.hosts, encoding: .utf8)
        let added = "127.0.0.2 \(name)\n127.0.0.3 \(name)\n"
        try (original + (original.hasSuffix("\n") ? "" : "\n") + added).write(toFile: Self.hosts, atomically: false, encoding: .utf8)
        defer {
            // Only our lines go; whatever else changed meanwhile stays.
            if let now = try? String(contentsOfFile: Self.hosts, encoding: .utf8) {
                let kept = now.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasSuffix(" \(name)") }
                try? kept.joined(separator: "\n").write(toFile: Self.hosts, atomically: false, encoding: .utf8)
            }
        }

        let two = try OrderlyProcess(
            ["node", "--id", "api-2", "--data", folder.path, "--http", "127.0.0.1:0", "--peer", "127.0.0.1:0", "--seeds", "\(name):\(port)"],
            stderrPath: folder.file("api-2.log"), environment: environment)
        defer { two.stop(signal: SIGKILL) }
        let http = try await two.waitReady()
        try await waitFor("api-2 to see api-1 alive through the seed name", timeout: .seconds(30)) {
            let members = try await HTTP.send(.GET, "http://\(http)/cluster").body["members"] as? [[String: Any]] ?? []
            return members.contains { $0["id"] as? String == "api-1" && $0["status"] as? String == "alive" }
        }
        // And it serves: api-1 has seen it alive too.
        try await waitFor("api-2 to be ready", timeout: .seconds(30)) {
            try await HTTP.send(.GET, "http://\(http)/health/ready").status == 200
        }
    }
}
