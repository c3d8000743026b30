import AsyncHTTPClient
import Foundation
import PeerTLS
import ProcessLaunch
import Testing

/// An HTTPS client trusting a cluster's CA, shut down when let go.
final class HTTPClientForCA: Sendable {
    let http: HTTPClient

    init(certs: String) throws {
        http = HTTPClient(configuration: .init(tlsConfiguration: try HTTPSConfiguration.client(trusting: "\(certs)/ca.pem")))
    }

    deinit { try? http.syncShutdown() }
}

/// A cluster spread over "hosts": each process in a network namespace of
/// its own, joined by veth pairs to one bridge, every link TLS (peer links
/// with the cluster's certificates, HTTPS for clients, the balancer and
/// the warehouse). `orderly simulate` drives customers through the
/// balancer while the network fails under it: a node's link taken down, a
/// one-way drop between two nodes (nftables on one side only) and, where
/// the kernel has sch_netem, delay and loss. Its checker must pass.
/// Needs root and `ip netns` (CI runs it as root); skipped otherwise. It
/// runs alone, after the suite (`ORDERLY_MULTIHOST=1 swift test --filter
/// MultiHostTests`, as `.ci/run` does): its six processes and their load,
/// beside the suite's own, made timing-bound tests elsewhere flaky.
@Suite(.serialized) struct MultiHostTests {
    static let requested = ProcessInfo.processInfo.environment["ORDERLY_MULTIHOST"] == "1"

    static let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static let nft = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static let tc = ["/usr/sbin/tc", "/sbin/tc", "/usr/bin/tc"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Root, iproute2 and nftables, and a namespace can be made here.
    static let canRun: Bool = {
        guard getuid() == 0, ip != nil, nft != nil else { return false }
        let probe = "orderly-probe-\(getpid())"
        defer { _ = try? sh(ip!, "netns", "del", probe) }
        return (try? sh(ip!, "netns", "add", probe)) != nil
    }()

    /// Runs a command to its end; throws with its output when it fails.
    @discardableResult
    static func sh(_ arguments: String...) throws -> String {
        try run(arguments)
    }

    @discardableResult
    static func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        let output = Pipe()
        try ProcessLaunch.run(process) {
            process.standardOutput = output
            process.standardError = output
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw TestFailure("\(arguments.joined(separator: " ")) exited \(process.terminationStatus): \(text)")
        }
        return text
    }

    /// The test network: a bridge, and per host a namespace with one end
    /// of a veth pair (eth0, 10.X.Y.N/24) and the other end on the bridge.
    final class Network: @unchecked Sendable {
        let tag = String(format: "%04x", UInt16.random(in: 0...UInt16.max))
        let subnet = "10.\(Int.random(in: 100...199)).\(Int.random(in: 0...255))"
        var bridge: String { "ob\(tag)" }
        private(set) var hosts: [String] = []

        func namespace(_ host: Int) -> String { "orderly-\(tag)-\(host)" }
        func address(_ host: Int) -> String { "\(subnet).\(host)" }
        /// The host side of a namespace's veth pair.
        func link(_ host: Int) -> String { "ov\(tag)h\(host)" }

        func up(hosts count: Int) throws {
            let ip = MultiHostTests.ip!
            try sh(ip, "link", "add", bridge, "type", "bridge")
            try sh(ip, "addr", "add", "\(subnet).254/24", "dev", bridge)
            try sh(ip, "link", "set", bridge, "up")
            for host in 1...count {
                try sh(ip, "netns", "add", namespace(host))
                hosts.append(namespace(host))
                try sh(ip, "link", "add", link(host), "type", "veth", "peer", "name", "eth0", "netns", namespace(host))
                try sh(ip, "link", "set", link(host), "master", bridge, "up")
                try sh(ip, "netns", "exec", namespace(host), ip, "addr", "add", "\(address(host))/24", "dev", "eth0")
                try sh(ip, "netns", "exec", namespace(host), ip, "link", "set", "eth0", "up")
                try sh(ip, "netns", "exec", namespace(host), ip, "link", "set", "lo", "up")
            }
        }

        /// Runs a command inside a host's namespace.
        func exec(_ host: Int, _ arguments: String...) throws {
            try run([MultiHostTests.ip!, "netns", "exec", namespace(host)] + arguments)
        }

        func down() {
            let ip = MultiHostTests.ip!
            for namespace in hosts { _ = try? sh(ip, "netns", "del", namespace) }
            _ = try? sh(ip, "link", "del", bridge)
        }
    }

    @Test(
        .enabled(if: requested, "runs alone: ORDERLY_MULTIHOST=1 swift test --filter MultiHostTests (.ci/run does, as root)"),
        .enabled(if: canRun, "needs root, iproute2 and nftables to make network namespaces"))
    func aClusterAcrossNamespacesOverTLSKeepsEveryAcknowledgedOrderThroughNetworkFaults() async throws {
        let folder = try TemporaryFolder()
        let network = Network()
        defer { network.down() }
        try network.up(hosts: 6)
        let (stats, wms, balancerHost) = (4, 5, 6)
        let ids = [1: "api-1", 2: "api-2", 3: "api-3", stats: "stats", wms: "wms", balancerHost: "balancer"]

        // One CA; each certificate names its node and every host's address.
        let certs = folder.file("certs")
        let made = try await OrderlyBinary.run([
            "certs", "init", "--out", certs, "--nodes", ids.values.sorted().joined(separator: ","),
            "--hosts", (1...6).map { network.address($0) }.joined(separator: ","),
        ])
        #expect(made.status == 0, "\(made.stderr)")
        func https(_ host: Int) -> [String] { ["--tls-cert", "\(certs)/\(ids[host]!).pem", "--tls-key", "\(certs)/\(ids[host]!).key"] }
        let environment: [String: String?] = [
            "ORDERLY_CLUSTER_SECRET": "multi-host-test-secret-\(UUID().uuidString)", "ORDERLY_CERTS": certs,
            "ORDERLY_ADMIN_TOKEN": nil,
        ]
        var processes: [OrderlyProcess] = []
        defer { for process in processes { process.stop(signal: SIGKILL) } }
        func start(_ host: Int, _ arguments: [String]) async throws -> String {
            let process = try OrderlyProcess(
                arguments + https(host), stderrPath: folder.file("\(ids[host]!).log"), environment: environment,
                launcher: [Self.ip!, "netns", "exec", network.namespace(host)])
            processes.append(process)
            return try await process.waitReady()
        }

        // API nodes bind every address of their host and advertise the one
        // the others reach.
        let seeds = (1...3).map { "\(network.address($0)):7070" }.joined(separator: ",")
        for host in 1...3 {
            var arguments = [
                "node", "--id", ids[host]!, "--data", folder.path, "--http", "0.0.0.0:8080", "--peer", "0.0.0.0:7070",
                "--advertise", network.address(host), "--event-loops", "1",
            ]
            if host > 1 { arguments += ["--seeds", "\(network.address(1)):7070"] }
            let http = try await start(host, arguments)
            #expect(http == "\(network.address(host)):8080", "the ready record names the advertised address")
        }
        let client = try HTTPClientForCA(certs: certs)
        for host in 1...3 {
            try await waitFor("\(ids[host]!) to lead its orders with three alive", timeout: .seconds(60)) {
                let view = try await HTTP.send(.GET, "https://\(network.address(host)):8080/cluster", client: client.http).body
                let members = view["members"] as? [[String: Any]] ?? []
                return view["leading"] as? Bool == true && members.filter { $0["status"] as? String == "alive" }.count == 3
                    && members.allSatisfy { ($0["http"] as? String ?? "").hasPrefix(network.subnet + ".") }
            }
        }
        let statsHTTP = try await start(stats, ["stats", "--data", folder.path, "--http", "\(network.address(stats)):8090", "--seeds", seeds])
        _ = try await start(wms, [
            "wms", "--data", folder.path, "--http", "\(network.address(wms)):8091", "--seeds", seeds, "--handling-time", "500ms",
            "--tls-ca", "\(certs)/ca.pem",
        ])
        let balancer = try await start(balancerHost, [
            "balancer", "--http", "\(network.address(balancerHost)):8080", "--seeds", seeds, "--stats", statsHTTP, "--strategy", "ring",
            "--tls-ca", "\(certs)/ca.pem",
        ])
        try await waitFor("the balancer to see three healthy nodes", timeout: .seconds(60)) {
            let backends = try await HTTP.send(.GET, "https://\(balancer)/balancer", client: client.http).body["backends"] as? [[String: Any]] ?? []
            return backends.filter { $0["state"] as? String == "healthy" }.count == 3
        }

        // Customers for 45 s; the network fails under them meanwhile.
        let simulation = try OrderlyProcess(
            [
                "simulate", "--target", "https://\(balancer)", "--tls-ca", "\(certs)/ca.pem", "--rate", "10", "--duration", "45s",
                "--data", folder.path, "--out", folder.file("report"),
            ], stderrPath: folder.file("simulate.log"))
        processes.append(simulation)
        let netem = Self.tc.map { tc in (try? network.exec(1, tc, "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "0ms")) != nil } ?? false
        if netem { try network.exec(1, Self.tc!, "qdisc", "del", "dev", "eth0", "root") }
        var faults: [String] = []
        let start = ContinuousClock.now
        func at(_ seconds: Int) async throws { try await Task.sleep(until: start + .seconds(seconds), clock: .continuous) }

        // api-3 cut off: its link goes down, and comes back.
        try await at(5)
        try Self.sh(Self.ip!, "link", "set", network.link(3), "down")
        faults.append("api-3's link down at 5 s")
        // The cut is real: the others stop hearing api-3.
        try await waitFor("api-1 to see api-3 suspect or dead", timeout: .seconds(9)) {
            let members = try await HTTP.send(.GET, "https://\(network.address(1)):8080/cluster", client: client.http).body["members"] as? [[String: Any]] ?? []
            return members.contains { $0["id"] as? String == "api-3" && $0["status"] as? String != "alive" }
        }
        try await at(15)
        try Self.sh(Self.ip!, "link", "set", network.link(3), "up")
        faults.append("up at 15 s")

        // One way: api-2 drops everything from api-1; api-1 still hears api-2.
        try await at(22)
        try network.exec(2, Self.nft!, "add", "table", "inet", "orderly_test")
        try network.exec(2, Self.nft!, "add", "chain", "inet", "orderly_test", "input", "{ type filter hook input priority 0; }")
        try network.exec(2, Self.nft!, "add", "rule", "inet", "orderly_test", "input", "ip", "saddr", network.address(1), "drop")
        faults.append("api-2 drops what api-1 sends from 22 s")
        try await at(30)
        try network.exec(2, Self.nft!, "delete", "table", "inet", "orderly_test")
        faults.append("to 30 s")

        // Delay and loss on api-1's link, where the kernel has netem.
        if netem {
            try await at(33)
            try network.exec(1, Self.tc!, "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "40ms", "10ms", "loss", "3%")
            faults.append("api-1: netem 40±10 ms delay, 3% loss from 33 s")
            try await at(40)
            try network.exec(1, Self.tc!, "qdisc", "del", "dev", "eth0", "root")
            faults.append("to 40 s")
        } else {
            faults.append("netem: not in this kernel (sch_netem), delay and loss skipped")
        }
        print("multi-host faults: \(faults.joined(separator: ", "))")

        try await waitFor("the simulation and its checker to finish", timeout: .seconds(300)) { !simulation.process.isRunning }
        let verdict = simulation.stdout
        print(verdict.split(separator: "\n").suffix(3).joined(separator: "\n"))
        #expect(simulation.process.terminationStatus == 0, "simulate failed:\n\(verdict.suffix(3000))\n\(simulation.stderrTail())")
        #expect(verdict.contains("checker: PASSED"))

        // Every node is whole again once the network is.
        for host in 1...3 {
            try await waitFor("\(ids[host]!) to see three alive after the faults", timeout: .seconds(60)) {
                let members = try await HTTP.send(.GET, "https://\(network.address(host)):8080/cluster", client: client.http).body["members"] as? [[String: Any]] ?? []
                return members.filter { $0["status"] as? String == "alive" }.count == 3
            }
        }
        // The peer links were TLS: every node logged its peers' TLS handshakes
        // and no clear-text peer.
        for host in 1...3 {
            let log = (try? String(contentsOfFile: folder.file("\(ids[host]!).log"), encoding: .utf8)) ?? ""
            #expect(log.contains("peer connection established"), "\(ids[host]!) connected to peers")
            #expect(log.contains("tls=tlsv13") && !log.contains("tls=off"), "\(ids[host]!)'s peer links ran TLS 1.3")
        }
    }
}
