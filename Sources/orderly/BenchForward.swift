import ArgumentParser
import EventLog
import Foundation
import Logging
import Node
import OrderDomain
import Wire

struct BenchForward: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Commands/s and latency through the dispatcher: local, and forwarded to a leader over the peer protocol.",
        discussion: """
            Two nodes run in this process, each with its own log and peer listener.
            Clients place orders through node A's dispatcher: first for orders node A
            leads (local), then for orders node B leads (forwarded over TCP with the
            authenticated peer protocol). Same run, same durability.
            """)

    @Option(help: "Commands per phase.")
    var commands: Int = 20_000

    @Option(help: "Concurrent clients.")
    var clients: Int = 64

    @Option(help: "fsync or relaxed.")
    var durability: Durability = .fsync

    func validate() throws {
        guard clients >= 1, commands >= clients else { throw ValidationError("--commands must be at least --clients, and --clients at least 1") }
    }

    func run() async throws {
        let folder = try BenchSupport.temporaryFolder("forward")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let logger = Logger(label: "bench")
        let secret = Array("bench-forward-cluster-secret".utf8)
        var options = EventLogOptions()
        options.durability = durability

        func node(_ id: String) async throws -> (OrderEngine, PeerService) {
            let engine = OrderEngine(
                log: try EventLog.open(data: folder, node: id, options: options, logger: logger),
                catalog: .standard, config: EngineConfig(nodeID: id), clock: SystemClock(), logger: logger)
            let inbox = NodeInbox(engine: engine, logger: logger)
            let peer = try await PeerService.bind(
                host: "127.0.0.1", port: 0, security: HandshakeConfig(cluster: "bench", nodeID: id, secret: secret), logger: logger
            ) { Dispatcher.serverHandler(inbox, logger: logger) }
            return (engine, peer)
        }
        let (engineA, peerA) = try await node("api-a")
        let (engineB, peerB) = try await node("api-b")
        let bAddress = peerB.address
        let dispatcher = Dispatcher(engine: engineA, security: HandshakeConfig(cluster: "bench", nodeID: "api-a", secret: secret), logger: logger) { order in
            order.rawValue.hasPrefix("b-") ? .remote(nodeID: "api-b", peer: bAddress) : .local
        }

        print("bench forward: \(commands) commands per phase, \(clients) clients, durability \(durability.rawValue)")
        let local = try await measure(dispatcher, prefix: "a")
        let forwarded = try await measure(dispatcher, prefix: "b")

        print("")
        print("path          commands/s   p50 ms   p99 ms")
        for (name, m) in [("local", local), ("forwarded", forwarded)] {
            print(
                name.padding(toLength: 12, withPad: " ", startingAt: 0) + BenchSupport.format(m.perSecond, 0).leftPad(12)
                    + BenchSupport.format(BenchSupport.quantile(m.latenciesMs, 0.5), 2).leftPad(9)
                    + BenchSupport.format(BenchSupport.quantile(m.latenciesMs, 0.99), 2).leftPad(9))
        }
        print(BenchSupport.json([
            "bench": "forward", "clients": clients, "commands": commands, "durability": durability.rawValue,
            "local_per_s": local.perSecond.rounded(), "forwarded_per_s": forwarded.perSecond.rounded(),
            "local_p50_ms": BenchSupport.quantile(local.latenciesMs, 0.5), "local_p99_ms": BenchSupport.quantile(local.latenciesMs, 0.99),
            "forwarded_p50_ms": BenchSupport.quantile(forwarded.latenciesMs, 0.5),
            "forwarded_p99_ms": BenchSupport.quantile(forwarded.latenciesMs, 0.99),
        ]))
        await dispatcher.shutdown()
        try? await peerA.channel.close()
        try? await peerB.channel.close()
        await engineA.shutdown()
        await engineB.shutdown()
    }

    struct Measurement {
        let perSecond: Double
        let latenciesMs: [Double]
    }

    private func measure(_ dispatcher: Dispatcher, prefix: String) async throws -> Measurement {
        let sku = Catalog.standard.all[0].sku
        let (seconds, latencies) = try await BenchSupport.runClients(clients, perClient: commands / clients) { client, index in
            let result = try await dispatcher.execute(
                ClientID("\(prefix)-\(client)-\(index)")!, .place(customer: "c", lines: [OrderLineRequest(sku: sku, qty: 1)]))
            guard case .success = result else { throw ValidationError("command refused: \(result)") }
        }
        return Measurement(perSecond: Double(latencies.count) / seconds, latenciesMs: latencies)
    }
}
