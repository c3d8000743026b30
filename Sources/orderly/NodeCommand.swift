import ArgumentParser
import EventLog
import Foundation
import HTTPAPI
import Hummingbird
import HummingbirdTLS
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

    @OptionGroup(title: "HTTPS")
    var https: HTTPSOptions

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    /// A bound host:port as peers and clients reach it: --advertise's host
    /// with the bound port.
    func advertised(_ bound: String) -> String {
        guard let host = clusterOptions.advertise, let colon = bound.lastIndex(of: ":") else { return bound }
        return "\(host)\(bound[colon...])"
    }

    func validate() throws {
        try validateNodeID(id)
        guard checkpointEvery >= 1 else { throw ValidationError("--checkpoint-every must be at least 1") }
        if let eventLoops, !(1...256).contains(eventLoops) { throw ValidationError("--event-loops must be 1-256") }
    }

    func run() async throws {
        // Before anything uses NIO's shared event loops (HTTP, peers, clients).
        if let eventLoops { NIOSingletons.groupLoopCountSuggestion = eventLoops }
        // Swift concurrency's tasks (transactors, forwarded commands, the
        // replication loops) run on those event loops too, instead of a pool
        // of their own: no hop between the two for every command and reply
        // (docs/performance.md, "Tasks on the event loops"). Nothing a node
        // runs may block a thread on what another task does.
        let tasksOnEventLoops = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        // Checked before anything starts: a node never half-joins a cluster.
        let secret = try clusterOptions.peer.map { _ in try clusterOptions.secret() }
        let tls = try clusterOptions.peer.flatMap { _ in try clusterOptions.tls(nodeID: id, data: data) }
        let adminToken = try clusterOptions.adminToken()
        let httpsTLS = try https.server()
        let servesHTTPS = httpsTLS != nil
        Bootstrap.logging(level: logLevel)
        let registry = Bootstrap.metrics()
        var logger = Logger(label: "orderly.node")
        logger[metadataKey: "node"] = "\(id)"
        logger.info("swift concurrency's tasks run on the event loops", metadata: ["installed": "\(tasksOnEventLoops)"])

        var logOptions = EventLogOptions()
        logOptions.durability = durability
        let log = try EventLog.open(data: data, node: id, options: logOptions, logger: logger)

        // A node without --peer is a cluster of one: every order is local.
        var config = NodeConfig(id: id, clustered: clusterOptions.peer != nil)
        config.engine.idleTimeout = idleTimeout.duration
        config.engine.checkpointEveryEvents = Int64(checkpointEvery)
        config.engine.holdTimeoutMs = holdTimeout.milliseconds
        config.replication.acks = clusterOptions.acks
        config.replication.partitionMode = clusterOptions.partitionMode
        config.replicationFactor = clusterOptions.replicationFactor
        config.membership.seeds = try clusterOptions.seedAddresses()
        config.membership.suspectAfterMs = clusterOptions.suspectAfter.milliseconds
        config.membership.deadAfterMs = clusterOptions.deadAfter.milliseconds

        // The peer listener binds first (the node needs its address); what
        // it receives goes to the node's inbox once the node is built.
        let security = HandshakeConfig(cluster: clusterOptions.cluster, nodeID: id, secret: secret ?? nil, versions: clusterOptions.protocolVersions)
        let clients = PeerClients(security: security, tls: tls, logger: logger)
        let inbox = InboxBox()
        var peerService: PeerService?
        if let peer = clusterOptions.peer {
            let peerLogger = logger
            peerService = try await PeerService.bind(host: peer.host, port: peer.port, security: security, tls: tls, logger: logger) {
                Dispatcher.serverHandler(inbox, filter: clients.filter, logger: peerLogger)
            }
            if secret ?? nil == nil { logger.warning("peer protocol runs in clear text without a secret (--insecure)") }
        }
        let node = try await OrderlyNode.assemble(
            config: config, log: log, network: clients, peerAddress: peerService.map { advertised($0.address) } ?? "", environment: .system(),
            logger: logger)
        inbox.node = node.inbox
        let membership = node.membership
        let replicator = node.replicator
        let dispatcher = node.dispatcher

        let nodeID = id
        let peerAddress = peerService.map { advertised($0.address) }
        let advertise = clusterOptions.advertise
        let router = APIServer.router(
            service: dispatcher, membership: membership, replicator: replicator, adminToken: adminToken, feeds: node.feed,
            protocols: security, registry: registry)
        let http1 = APIServer.http1(router: router, serverName: "orderly-\(id)")
        let app = Application(
            router: router,
            server: try httpsTLS.map { try .tls(http1, tlsConfiguration: $0) } ?? http1,
            configuration: .init(address: .hostname(http.host, port: http.port), serverName: "orderly-\(id)"),
            onServerRunning: { channel in
                let address = channel.localAddress
                let host = advertise ?? address?.ipAddress ?? "127.0.0.1"
                let port = address?.port ?? 0
                membership.advertise(http: "\(host):\(port)")
                var fields: [(String, Any)] = [("ready", true), ("role", "api"), ("id", nodeID), ("http", "\(host):\(port)"), ("tls", servesHTTPS)]
                if let peerAddress { fields.append(("peer", peerAddress)) }
                fields.append(("pid", Int(ProcessInfo.processInfo.processIdentifier)))
                Bootstrap.printReady(fields)
            },
            logger: logger)

        // Shutdown runs in reverse: HTTP drains first, then the node says it
        // leaves, the peer listener closes, and the engine checkpoints and
        // closes the log.
        let services: [any Service] = [node.engine] + (peerService.map { [$0] } ?? []) + Array(node.services.dropFirst()) + [app]
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }
}

/// Lets the peer listener, which starts first, reach the node built once
/// its address is known. Until then peers hear that it is starting.
final class InboxBox: PeerInbox {
    private let box = Mutex<NodeInbox?>(nil)

    var node: NodeInbox? {
        get { box.withLock { $0 } }
        set { box.withLock { $0 = newValue } }
    }

    func receive(_ message: PeerMessage, from sender: String) {
        node?.receive(message, from: sender)
    }

    func answer(_ request: PeerRequest, from sender: String) async -> PeerReply {
        if let node { return await node.answer(request, from: sender) }
        return request.refused("this node is starting")
    }
}
