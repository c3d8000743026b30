import ArgumentParser
import EventLog
import Foundation
import HTTPAPI
import Hummingbird
import Logging
import Node
import OrderDomain
import ServiceLifecycle
import Wire

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Run an API node: HTTP API, transactors and the node's event log.",
        discussion: """
            The log lives in DATA/ID/log.sqlite. Once the node serves, one line of
            JSON goes to stdout: {"ready":true,"role":"api","id":...,"http":...,"pid":...}.
            SIGTERM or SIGINT stops it gracefully: requests in flight finish, every
            active order is checkpointed and the log is closed.
            """)

    @Option(help: "Node id (1-64 of A-Z a-z 0-9 . _ -).")
    var id: String

    @Option(help: "Data folder; the log goes to DATA/ID/log.sqlite.")
    var data: String

    @Option(help: "HTTP address host:port; port 0 picks a free port.")
    var http: HostPort = HostPort(argument: "127.0.0.1:8080")!

    @Option(help: "Passivate an order's transactor after this much idle time (e.g. 10s, 500ms).")
    var idleTimeout: DurationArgument = DurationArgument(argument: "10s")!

    @Option(help: "Write an order checkpoint every N events.")
    var checkpointEvery: Int = 100

    @Option(help: "Refund a payment whose order has not arrived after this long.")
    var holdTimeout: DurationArgument = DurationArgument(argument: "60s")!

    @Option(help: "fsync (every commit reaches the disk) or relaxed (SQLite syncs at WAL checkpoints).")
    var durability: Durability = .fsync

    @OptionGroup(title: "Cluster")
    var clusterOptions: ClusterOptions

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        try validateNodeID(id)
        guard checkpointEvery >= 1 else { throw ValidationError("--checkpoint-every must be at least 1") }
    }

    func run() async throws {
        // Checked before anything starts: a node never half-joins a cluster.
        let secret = try clusterOptions.peer.map { _ in try clusterOptions.secret() }
        Bootstrap.logging(level: logLevel)
        let registry = Bootstrap.metrics()
        var logger = Logger(label: "orderly.node")
        logger[metadataKey: "node"] = "\(id)"

        var logOptions = EventLogOptions()
        logOptions.durability = durability
        let log = try EventLog.open(data: data, node: id, options: logOptions, logger: logger)

        var config = EngineConfig(nodeID: id)
        config.idleTimeout = idleTimeout.duration
        config.checkpointEveryEvents = Int64(checkpointEvery)
        config.holdTimeoutMs = holdTimeout.milliseconds
        let engine = OrderEngine(log: log, catalog: .standard, config: config, logger: logger)

        var peerService: PeerService?
        if let peer = clusterOptions.peer {
            let security = HandshakeConfig(cluster: clusterOptions.cluster, nodeID: id, secret: secret ?? nil)
            let peerLogger = logger
            peerService = try await PeerService.bind(host: peer.host, port: peer.port, security: security, logger: logger) {
                Dispatcher.serverHandler(engine: engine, logger: peerLogger)
            }
            if secret ?? nil == nil { logger.warning("peer protocol runs without a secret (--insecure)") }
        }

        let nodeID = id
        let peerAddress = peerService?.address
        let app = Application(
            router: APIServer.router(service: engine, registry: registry),
            configuration: .init(address: .hostname(http.host, port: http.port), serverName: "orderly-\(id)"),
            onServerRunning: { channel in
                let address = channel.localAddress
                let host = address?.ipAddress ?? "127.0.0.1"
                let port = address?.port ?? 0
                var fields: [(String, Any)] = [("ready", true), ("role", "api"), ("id", nodeID), ("http", "\(host):\(port)")]
                if let peerAddress { fields.append(("peer", peerAddress)) }
                fields.append(("pid", Int(ProcessInfo.processInfo.processIdentifier)))
                Bootstrap.printReady(fields)
            },
            logger: logger)

        // Shutdown runs in reverse: HTTP drains first, then the engine
        // checkpoints and closes the log.
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: engine)] + (peerService.map { [.init(service: $0)] } ?? []) + [.init(service: app)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }
}
