import Foundation
import Testing

/// `orderly cluster up|status|kill|start|down` as a person would use them
/// from two shells.
@Suite(.serialized) struct ClusterLauncherTests {
    static func run(_ arguments: [String], in folder: borrowing TemporaryFolder) async throws -> (status: Int32, output: String) {
        let process = try OrderlyProcess(arguments, stderrPath: folder.file("cmd-\(UUID().uuidString).log"))
        let status = try await waitUntil("orderly \(arguments.prefix(2).joined(separator: " "))", timeout: .seconds(180)) {
            process.process.isRunning ? nil : process.process.terminationStatus
        }
        let output = (try? await waitUntil("its output", timeout: .seconds(2)) { process.stdout.isEmpty ? nil : process.stdout }) ?? ""
        return (status, output + process.stderrTail())
    }

    static func nodes(_ folder: borrowing TemporaryFolder) throws -> [String: [String: Any]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: folder.file("cluster/cluster.json")))
        let nodes = (try JSONSerialization.jsonObject(with: data) as? [String: Any])?["nodes"] as? [[String: Any]] ?? []
        return Dictionary(uniqueKeysWithValues: nodes.map { ($0["id"] as! String, $0) })
    }

    static func pids(_ folder: borrowing TemporaryFolder) throws -> [String: Int32] {
        let data = try Data(contentsOf: URL(fileURLWithPath: folder.file("cluster/cluster.json")))
        let nodes = (try JSONSerialization.jsonObject(with: data) as? [String: Any])?["nodes"] as? [[String: Any]] ?? []
        return Dictionary(uniqueKeysWithValues: nodes.map { ($0["id"] as! String, Int32(truncating: $0["pid"] as! NSNumber)) })
    }

    @Test func upStatusKillStartAndDownFromAnotherShell() async throws {
        let folder = try TemporaryFolder()
        let data = folder.file("cluster")
        let up = try OrderlyProcess(["cluster", "up", "--data", data, "--base-port", "0"], stderrPath: folder.file("up.log"))
        defer {
            up.stop(signal: SIGKILL)
            if let pids = try? Self.pids(folder) { for pid in pids.values { kill(pid, SIGKILL) } }
        }
        try await waitFor("the cluster to be up", timeout: .seconds(90)) { up.stdout.contains("Ctrl-C stops the cluster") }
        let pids = try Self.pids(folder)
        #expect(Set(pids.keys) == ["api-1", "api-2", "api-3", "stats", "wms", "balancer"])
        // It made the cluster's certificates, and the peer links run TLS.
        for file in ["ca.pem", "ca.key"] + pids.keys.flatMap({ ["\($0).pem", "\($0).key"] }) {
            #expect(FileManager.default.fileExists(atPath: "\(data)/certs/\(file)"), "cluster up made certs/\(file)")
        }
        let nodeLog = try String(contentsOfFile: "\(data)/api-1/node.log", encoding: .utf8)
        #expect(nodeLog.contains("peer connection established") && nodeLog.contains("tls=tlsv13"), "api-1's peer links run TLS 1.3")

        let status = try await Self.run(["cluster", "status", "--data", data], in: folder)
        #expect(status.status == 0)
        #expect(status.output.components(separatedBy: "running").count - 1 == 6, "\(status.output)")

        // A second cluster on the same folder is refused.
        let second = try await Self.run(["cluster", "up", "--data", data, "--base-port", "0"], in: folder)
        #expect(second.status != 0)
        #expect(second.output.contains("already runs"), "\(second.output)")

        // Kill a node, see it down, start it again.
        #expect(try await Self.run(["cluster", "kill", "api-2", "--signal", "KILL", "--data", data], in: folder).status == 0)
        try await waitFor("api-2 to be gone", timeout: .seconds(10)) { kill(pids["api-2"]!, 0) != 0 }
        let down = try await Self.run(["cluster", "status", "--data", data], in: folder)
        #expect(down.output.contains(" down"), "\(down.output)")
        #expect(try await Self.run(["cluster", "start", "api-2", "--data", data], in: folder).status == 0)
        let restarted = try Self.pids(folder)["api-2"]!
        var all1: Int32? = nil
        #expect(restarted != pids["api-2"] && kill(restarted, 0) == 0)
        #expect(try await Self.run(["cluster", "kill", "nope", "--data", data], in: folder).status != 0)

        // api-1, started without seeds, leaves (SIGTERM) and comes back: it
        // joins again (its peers no longer talk to a member that left, and
        // without seeds it would wait to join for ever). Joined, not ready:
        // readiness also needs every peer's failure detector to agree, which
        // a machine this loaded can keep from settling for minutes.
        #expect(try await Self.run(["cluster", "kill", "api-1", "--signal", "TERM", "--data", data], in: folder).status == 0)
        try await waitFor("api-1 to be gone", timeout: .seconds(30)) { kill(pids["api-1"]!, 0) != 0 }
        #expect(try await Self.run(["cluster", "start", "api-1", "--data", data], in: folder).status == 0)
        let api1 = try Self.nodes(folder)["api-1"]?["http"] as? String ?? ""
        do {
            try await waitFor("api-1 to join again", timeout: .seconds(120)) {
                (try? await HTTP.send(.GET, "http://\(api1)/cluster"))?.body["joined"] as? Bool == true
            }
        } catch {
            let log = (try? String(contentsOfFile: data + "/api-1/node.log", encoding: .utf8)) ?? ""
            Issue.record("\(error); api-1's log ends:\n\(log.suffix(3000))")
            throw error
        }
        all1 = try Self.pids(folder)["api-1"]

        // Down stops every process, the supervisor included.
        #expect(try await Self.run(["cluster", "down", "--data", data], in: folder).status == 0)
        var all = pids
        all["api-2"] = restarted
        all["api-1"] = all1
        for (id, pid) in all { #expect(kill(pid, 0) != 0, "\(id) still runs") }
        try await waitFor("the supervisor to end", timeout: .seconds(20)) { !up.process.isRunning }
        #expect(!FileManager.default.fileExists(atPath: data + "/cluster.json"))
        #expect(FileManager.default.fileExists(atPath: data + "/api-1/node.log"))
    }
}
