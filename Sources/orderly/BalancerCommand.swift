import ArgumentParser
import Balancer
import BalancerCore
import Foundation
import HTTPAPI
import Hummingbird
import Logging
import Node
import ServiceLifecycle
import Wire

extension Strategy: ExpressibleByArgument {}

struct BalancerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "balancer",
        abstract: "Run the load balancer: an HTTP reverse proxy over the API nodes.",
        discussion: """
            Backends come from cluster membership (any API node's view, through
            --seeds): a node that joins gets traffic, one that dies or leaves stops
            getting it. --backend is a static fallback. Each backend's /health/ready is
            checked every 500 ms; connection failures and 5xx answers eject a backend
            for a time that doubles on repeats; a backend that returns ramps up (slow
            start). A request whose backend failed to connect, died before answering or
            answered 503 is retried on another backend (commands are idempotent by id).
            /stats/* goes to --stats. GET /balancer shows the backends.

            The proxy runs on one thread and moves bytes: answers come back as the
            backend wrote them. A request body over 1 MiB gets 413, a chunked request
            body 411 (send Content-Length), a head over 16 KiB 431; pipelined requests
            are answered in order.
            """)

    @Option(help: "HTTP address host:port; port 0 picks a free port.")
    var http: HostPort = HostPort(argument: "127.0.0.1:8080")!

    @Option(help: "Peer addresses host:port,... of API nodes (any member will do).")
    var seeds: String?

    @Option(help: "A static backend host:port (repeatable); used while discovery finds none.")
    var backend: [HostPort] = []

    @Option(help: "round-robin, weighted, least-outstanding or ring (straight to the order's leader).")
    var strategy: Strategy = .roundRobin

    @Option(help: "Weight of a backend for --strategy weighted, as ID=N with N 1-100 (repeatable; a static backend's id is its host:port), or `latency` to weigh backends by their measured answer times.")
    var weight: [String] = []

    @Option(help: "The stats node's HTTP address host:port, for /stats/*.")
    var stats: HostPort?

    @Option(help: "Nodes in each order's preference list (as the API nodes were started with).")
    var replicationFactor: Int = 3

    @OptionGroup(title: "Cluster")
    var access: ClusterAccessOptions

    @OptionGroup(title: "HTTPS")
    var https: HTTPSOptions

    @OptionGroup(title: "HTTPS to the backends")
    var backendHTTPS: HTTPSClientOptions

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        let seedList = try parseSeeds(seeds)
        guard !seedList.isEmpty || !backend.isEmpty else { throw ValidationError("give --seeds, --backend, or both") }
        guard (1...16).contains(replicationFactor) else { throw ValidationError("--replication-factor must be 1-16") }
        _ = try parsedWeights()
    }

    func parsedWeights() throws -> (weights: [String: Int], fromLatency: Bool) {
        var weights: [String: Int] = [:]
        var fromLatency = false
        for item in weight {
            if item == "latency" {
                fromLatency = true
                continue
            }
            guard let equals = item.lastIndex(of: "="), let value = Int(item[item.index(after: equals)...]), (1...100).contains(value),
                equals != item.startIndex
            else { throw ValidationError("--weight '\(item)' is not ID=N with N from 1 to 100, or latency") }
            weights[String(item[..<equals])] = value
        }
        return (weights, fromLatency)
    }

    func run() async throws {
        Bootstrap.logging(level: logLevel)
        let registry = Bootstrap.metrics()
        let logger = Logger(label: "orderly.balancer")
        var config = Balancer.Config()
        config.strategy = strategy
        config.seeds = try parseSeeds(seeds)
        config.staticBackends = backend.map(\.description)
        config.stats = stats?.description
        config.replicationFactor = replicationFactor
        (config.weights, config.weightsFromLatency) = try parsedWeights()
        config.backendTLS = try backendHTTPS.client()
        let frontTLS = try https.server()
        let servesHTTPS = frontTLS != nil
        let clients = config.seeds.isEmpty
            ? nil
            : PeerClients(
                security: HandshakeConfig(cluster: access.cluster, nodeID: "balancer", secret: try access.secret()),
                tls: try access.tls(nodeID: "balancer", data: nil), logger: logger)
        let balancer = Balancer(config: config, clients: clients, logger: logger)
        let proxy = ProxyServer(balancer: balancer, host: http.host, port: http.port, registry: registry, tls: frontTLS, logger: logger) { address in
            Bootstrap.printReady([
                ("ready", true), ("role", "balancer"), ("id", "balancer"),
                ("http", "\(address.ipAddress ?? "127.0.0.1"):\(address.port ?? 0)"), ("tls", servesHTTPS),
                ("pid", Int(ProcessInfo.processInfo.processIdentifier)),
            ])
        }
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: balancer), .init(service: proxy)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
