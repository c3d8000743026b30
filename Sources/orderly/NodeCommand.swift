import ArgumentParser
import EventLog
import Foundation
import HTTPAPI
import Hummingbird
import Logging
import NIOCore
import Node
import OrderDomain
import Membership
import Replication
import ServiceLifecycle
import Synchronization
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

    @Option(help: ArgumentHelp(
        "Event-loop threads for HTTP and peer connections (default: one per core).",
        discussion: "Nodes that share a machine do better with fewer each: `cluster up`, `demo` and `bench replicate` give each node cores / nodes, at least 1."))
    var eventLoops: Int?

    @OptionGroup(title: "Cluster")
    var clusterOptions: ClusterOptions

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        try validateNodeID(id)
        guard checkpointEvery >= 1 else { throw ValidationError("--checkpoint-every must be at least 1") }
        if let eventLoops, !(1...256).contains(eventLoops) { throw ValidationError("--event-loops must be 1-256") }
    }

    func run() async throws {
        // Before anything uses NIO's shared event loops (HTTP, peers, clients).
        if let eventLoops { NIOSingletons.groupLoopCountSuggestion = eventLoops }
        // Checked before anything starts: a node never half-joins a cluster.
        let secret = try clusterOptions.peer.map { _ in try clusterOptions.secret() }
        let adminToken = try clusterOptions.adminToken()
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
        // Membership, routing, replication and the peer listener. A node
        // without --peer is a cluster of one: every order is local.
        let security = HandshakeConfig(cluster: clusterOptions.cluster, nodeID: id, secret: secret ?? nil)
        let clients = PeerClients(security: security, logger: logger)
        var replicationConfig = ReplicationConfig()
        replicationConfig.acks = clusterOptions.acks
        replicationConfig.partitionMode = clusterOptions.partitionMode
        let replicator = clusterOptions.peer == nil ? nil : Replicator(log: log, clients: clients, config: replicationConfig, logger: logger)
        let engine = OrderEngine(log: log, catalog: .standard, config: config, replication: replicator, logger: logger)
        let copyCheckpointer = CopyCheckpointer(log: log, every: config.checkpointEveryEvents, logger: logger)
        replicator?.onCopied { copied in
            await engine.invalidate(Set(copied.keys))
            await copyCheckpointer.noteCopied(copied)
        }

        var membershipConfig = MembershipConfig()
        membershipConfig.seeds = try clusterOptions.seedAddresses()
        membershipConfig.suspectAfterMs = clusterOptions.suspectAfter.milliseconds
        membershipConfig.deadAfterMs = clusterOptions.deadAfter.milliseconds
        let membershipBox = MembershipBox()
        var peerService: PeerService?
        if let peer = clusterOptions.peer {
            let peerLogger = logger
            peerService = try await PeerService.bind(host: peer.host, port: peer.port, security: security, logger: logger) {
                Dispatcher.serverHandler(
                    PeerHandlers(engine: engine, gossip: { membershipBox.value?.receive($0, from: $1) }, replicator: replicator, filter: clients.filter,
                        route: { membershipBox.value?.route($0) ?? .unavailable("starting") },
                        view: { membershipBox.value?.members ?? [] }),
                    logger: peerLogger)
            }
            if secret ?? nil == nil { logger.warning("peer protocol runs without a secret (--insecure)") }
        }
        let wasInCluster = !(try await log.replicaPositions()).isEmpty
        let membership = ClusterMembership(
            self: Member(id: id, http: "", peer: peerService?.address ?? "", incarnation: UInt64(WallClock.nowMs())),
            config: membershipConfig, replicationFactor: clusterOptions.replicationFactor, partitionMode: clusterOptions.partitionMode,
            mustJoin: !membershipConfig.seeds.isEmpty || wasInCluster, clients: clients, logger: logger)
        membershipBox.value = membership
        replicator?.attach(membership)
        let dispatcher = Dispatcher(engine: engine, clients: clients) { membership.route($0) }

        let nodeID = id
        let peerAddress = peerService?.address
        let app = Application(
            router: APIServer.router(
                service: dispatcher, membership: membership, replicator: replicator, adminToken: adminToken, registry: registry),
            server: .http1OnEventLoops(),
            configuration: .init(address: .hostname(http.host, port: http.port), serverName: "orderly-\(id)"),
            onServerRunning: { channel in
                let address = channel.localAddress
                let host = address?.ipAddress ?? "127.0.0.1"
                let port = address?.port ?? 0
                membership.advertise(http: "\(host):\(port)")
                var fields: [(String, Any)] = [("ready", true), ("role", "api"), ("id", nodeID), ("http", "\(host):\(port)")]
                if let peerAddress { fields.append(("peer", peerAddress)) }
                fields.append(("pid", Int(ProcessInfo.processInfo.processIdentifier)))
                Bootstrap.printReady(fields)
            },
            logger: logger)

        // Shutdown runs in reverse: HTTP drains first, then the node says it
        // leaves, the peer listener closes, and the engine checkpoints and
        // closes the log.
        let services: [any Service] = [engine] + (peerService.map { [$0] } ?? []) + (replicator.map { [$0] } ?? []) + [membership, app]
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }
}

/// Lets the peer listener, which starts first, reach the membership made
/// once its address is known.
final class MembershipBox: Sendable {
    private let box = Mutex<ClusterMembership?>(nil)
    var value: ClusterMembership? {
        get { box.withLock { $0 } }
        set { box.withLock { $0 = newValue } }
    }
}
