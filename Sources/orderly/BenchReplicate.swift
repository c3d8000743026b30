import ArgumentParser
import AsyncHTTPClient
import Foundation
import HashRing
import NIOCore
import PeerTLS
import Replication

struct BenchReplicate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replicate",
        abstract: "Replicated durable commands/s, commit latency, replica lag and failover time of a real cluster.",
        discussion: """
            Starts NODES `orderly node` processes (fsync, --acks as given) in a temp
            folder. Clients place orders over HTTP, each sent straight to the order's
            leader (computed from the same ring), so the figures measure replication,
            not forwarding. Replica lag is sampled from every node's GET /cluster
            during the load. Then the leader of one order is SIGKILLed and a client
            retries a payment on that order through another node until it succeeds:
            that time is the failover time.
            """)

    @Option(help: "API nodes to start.")
    var nodes: Int = 3

    @Option(help: "leader, quorum or all.")
    var acks: AckPolicy = .quorum

    @Option(help: "Concurrent clients.")
    var clients: Int = 64

    @Flag(help: "Peer links in clear text without a secret (to measure what TLS costs); by default TLS with the cluster's certificates.")
    var insecure = false

    @Option(help: "Commands in the load phase.")
    var commands: Int = 20_000

    func validate() throws {
        guard (1...9).contains(nodes) else { throw ValidationError("--nodes must be 1-9") }
        guard clients >= 1, commands >= clients else { throw ValidationError("--commands must be at least --clients, and --clients at least 1") }
    }

    struct Node: Sendable {
        let id: String
        let process: ChildProcess
        let http: String
    }

    func run() async throws {
        let folder = try BenchSupport.temporaryFolder("replicate")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let secretFile = (folder as NSString).appendingPathComponent("cluster.secret")
        try "bench-replicate-\(UUID().uuidString)".write(toFile: secretFile, atomically: true, encoding: .utf8)
        if !insecure {
            try ClusterCertificates(folder: (folder as NSString).appendingPathComponent("certs")).initialize(nodes: (1...nodes).map { "api-\($0)" })
        }

        print("bench replicate: \(nodes) nodes, acks \(acks.rawValue), \(clients) clients, \(commands) commands, fsync, peer links \(insecure ? "in clear text" : "TLS 1.3")")
        var cluster: [Node] = []
        defer { for node in cluster { node.process.stop(signal: SIGKILL) } }
        var seed: String?
        for index in 1...nodes {
            let id = "api-\(index)"
            var arguments = [
                "node", "--id", id, "--data", folder, "--http", "127.0.0.1:0", "--peer", "127.0.0.1:0",
                "--acks", acks.rawValue, "--log-level", "warning",
                "--event-loops", "\(eventLoopsPerNode(sharing: nodes))",
            ]
            arguments += insecure ? ["--insecure"] : ["--cluster-secret-file", secretFile]
            if let seed { arguments += ["--seeds", seed] }
            let process = ChildProcess(arguments: arguments, stderrPath: (folder as NSString).appendingPathComponent("\(id).log"))
            try process.start()
            let ready = try await process.waitReady(timeout: .seconds(120))
            seed = seed ?? ChildProcess.field("peer", in: ready.line)
            cluster.append(Node(id: id, process: process, http: ready.http))
        }
        let byID = Dictionary(uniqueKeysWithValues: cluster.map { ($0.id, $0) })
        try await waitUntilLeading(cluster)
        let ring = HashRing(nodes: Dictionary(uniqueKeysWithValues: cluster.map { ($0.id, 1) }))

        // Load, with lag sampled alongside.
        let lagSamples = LagSamples()
        let addresses = cluster.map(\.http)
        let sampler = Task {
            while !Task.isCancelled {
                for http in addresses { await lagSamples.add(try? await Self.followerLags(http)) }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        let body = #"{"customer":"c","lines":[{"sku":"SKU-00001","qty":1}]}"#
        let targetIndex = Dictionary(uniqueKeysWithValues: cluster.enumerated().map { ($0.element.id, $0.offset) })
        let cpuBefore = cluster.map { BenchSupport.cpuSeconds(pid: $0.process.pid) }
        let load = try await HTTPLoad.run(targets: addresses, clients: clients, perClient: commands / clients) { client, index in
            let order = "r-\(client)-\(index)"
            return HTTPLoad.Request(
                target: targetIndex[ring.owner(of: order)!]!, method: "POST", path: "/orders", body: #"{"id":"\#(order)","# + body.dropFirst())
        }
        if let failure = load.firstFailure { throw ValidationError("the load failed: \(failure) (answers: \(load.statuses))") }
        // The nodes' CPU a command: it moves far less with a noisy host than
        // commands/s do, so compare builds by it.
        let nodeCPU = zip(cluster, cpuBefore).map { BenchSupport.cpuSeconds(pid: $0.process.pid) - $1 }.reduce(0, +)
        let (seconds, latencies) = (load.seconds, load.latenciesMs)
        sampler.cancel()
        let lags = await lagSamples.values

        // Failover: kill the leader of one order, retry a write through another node.
        var failover = -1.0
        if nodes >= 2 {
            let order = "failover-1"
            let victim = byID[ring.owner(of: order)!]!
            let survivor = cluster.first { $0.id != victim.id }!
            _ = try await Self.post("http://\(victim.http)/orders", #"{"id":"\#(order)","# + body.dropFirst())
            let killedAt = ContinuousClock.now
            victim.process.stop(signal: SIGKILL)
            while BenchSupport.seconds(since: killedAt) < 30 {
                let status = (try? await Self.post("http://\(survivor.http)/orders/\(order)/payments", #"{"id":"pay-1","amount_cents":1}"#)) ?? 0
                if (200..<300).contains(status) {
                    failover = BenchSupport.seconds(since: killedAt)
                    break
                }
                try? await Task.sleep(for: .milliseconds(10))
            }
        }

        let perSecond = Double(latencies.count) / seconds
        let p50 = BenchSupport.quantile(latencies, 0.5)
        let p99 = BenchSupport.quantile(latencies, 0.99)
        let lagP99 = BenchSupport.quantile(lags, 0.99)
        print("")
        let cpuPerCommand = nodeCPU / Double(max(1, latencies.count)) * 1e6
        print("commands/s   p50 ms   p99 ms   replica lag p99 ms   failover s   node CPU us/command")
        print(
            BenchSupport.format(perSecond, 0).leftPad(10) + BenchSupport.format(p50, 2).leftPad(9) + BenchSupport.format(p99, 2).leftPad(9)
                + BenchSupport.format(lagP99, 1).leftPad(21) + BenchSupport.format(failover, 2).leftPad(13)
                + BenchSupport.format(cpuPerCommand, 0).leftPad(22))
        print(BenchSupport.json([
            "bench": "replicate", "nodes": nodes, "acks": acks.rawValue, "clients": clients, "commands": latencies.count,
            "commands_per_s": perSecond.rounded(), "p50_ms": p50, "p99_ms": p99, "replica_lag_p99_ms": lagP99,
            "lag_samples": lags.count, "failover_s": failover, "node_cpu_us_per_command": cpuPerCommand.rounded(),
        ]))
    }

    /// Waits until every node leads its own orders (joined and seen alive by all).
    private func waitUntilLeading(_ cluster: [Node]) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        for node in cluster {
            while true {
                let view = try? await Self.get("http://\(node.http)/cluster")
                let members = (view?["members"] as? [[String: Any]] ?? []).filter { $0["status"] as? String == "alive" }
                if view?["leading"] as? Bool == true && members.count == cluster.count { break }
                guard ContinuousClock.now < deadline else { throw ValidationError("the cluster did not form within 60 s") }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// One keep-alive connection per concurrent client (the shared client
    /// allows 8 per host, which would queue the load in the client).
    static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 256
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    static func post(_ url: String, _ json: String) async throws -> Int {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: json))
        let response = try await client.execute(request, timeout: .seconds(10))
        _ = try await response.body.collect(upTo: 1 << 20)
        return Int(response.status.code)
    }

    static func get(_ url: String) async throws -> [String: Any] {
        let response = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(5))
        let body = try await response.body.collect(upTo: 1 << 22)
        return (try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]) ?? [:]
    }

    /// lag_ms of every follower of the node's own log.
    static func followerLags(_ http: String) async throws -> [Double] {
        let view = try await get("http://\(http)/cluster")
        let node = view["node"] as? String
        let origins = (view["replication"] as? [String: Any])?["origins"] as? [[String: Any]] ?? []
        let own = origins.first { $0["origin"] as? String == node }
        return (own?["followers"] as? [[String: Any]] ?? []).compactMap { ($0["lag_ms"] as? NSNumber)?.doubleValue }
    }
}

actor LagSamples {
    private(set) var values: [Double] = []
    func add(_ samples: [Double]?) { values += samples ?? [] }
}
