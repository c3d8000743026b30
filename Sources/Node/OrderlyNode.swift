import LogStorage
import Logging
import Membership
import NodeRuntime
import OrderDomain
import Replication
import ServiceLifecycle
import Synchronization

/// Everything an API node is configured with, besides its storage, its
/// network and its environment.
public struct NodeConfig: Sendable {
    public var id: String
    public var engine: EngineConfig
    public var replication = ReplicationConfig()
    public var membership = MembershipConfig()
    public var replicationFactor = 3
    /// With peers: membership, log shipping and forwarding. Without, the
    /// node is a cluster of one and leads every order.
    public var clustered: Bool
    public var catalog: Catalog = .standard

    public init(id: String, clustered: Bool) {
        self.id = id
        self.engine = EngineConfig(nodeID: id)
        self.clustered = clustered
    }
}

/// One API node, assembled in one place from its parts: the order engine
/// and its transactors over `log`, membership, the replicator and the
/// dispatcher over `network`, all on `environment`'s clock and spawner. The
/// CLI builds it on SQLite and TCP; the deterministic simulation builds the
/// same node on an in-memory log and a simulated network.
public final class OrderlyNode: Sendable {
    public let id: String
    public let log: any LogStore
    public let engine: OrderEngine
    /// Nil for a node without peers.
    public let replicator: Replicator?
    public let membership: ClusterMembership
    public let dispatcher: Dispatcher
    /// What this node serves its peers.
    public let inbox: NodeInbox
    /// Opens the event feeds of `GET /events`.
    public let feed: FeedSource
    public let network: any PeerNetwork
    private let copyCheckpointer: CopyCheckpointer

    /// - Parameters:
    ///   - peerAddress: where peers reach this node ("" without peers).
    public static func assemble(
        config: NodeConfig, log: any LogStore, network: any PeerNetwork, peerAddress: String, environment: NodeEnvironment,
        logger: Logger
    ) async throws -> OrderlyNode {
        // A node whose log shows it copied peers was in a cluster: it must
        // hear from one before it leads anything, seeds or not.
        // And the ring it knew is where it places orders until it hears
        // the rest (`ring_members`).
        let remembered = config.clustered ? try await log.ringMembers() : [:]
        let wasInCluster = !(try await log.replicaPositions()).isEmpty || remembered.keys.contains { $0 != config.id }
        return OrderlyNode(
            config: config, log: log, network: network, peerAddress: peerAddress,
            mustJoin: !config.membership.seeds.isEmpty || wasInCluster, remembered: remembered, environment: environment, logger: logger)
    }

    private init(
        config: NodeConfig, log: any LogStore, network: any PeerNetwork, peerAddress: String, mustJoin: Bool,
        remembered: [String: Bool], environment: NodeEnvironment, logger: Logger
    ) {
        var logger = logger
        logger[metadataKey: "node"] = "\(config.id)"
        self.id = config.id
        self.log = log
        self.network = network
        let replicator = config.clustered
            ? Replicator(log: log, network: network, config: config.replication, environment: environment, logger: logger) : nil
        let engine = OrderEngine(
            log: log, catalog: config.catalog, config: config.engine, replication: replicator, clock: environment.clock, logger: logger)
        let copyCheckpointer = CopyCheckpointer(log: log, every: config.engine.checkpointEveryEvents, spawner: environment.spawner, logger: logger)
        replicator?.onCopied { copied in
            await engine.invalidate(Set(copied.keys))
            await copyCheckpointer.noteCopied(copied)
        }
        // Each life of a node has a higher incarnation than the last.
        let me = Member(id: config.id, http: "", peer: peerAddress, incarnation: UInt64(max(1, environment.clock.wallMs)))
        let membership = ClusterMembership(
            self: me, config: config.membership, replicationFactor: config.replicationFactor,
            partitionMode: config.replication.partitionMode, mustJoin: mustJoin, remembered: remembered, network: network,
            environment: environment, logger: logger)
        if config.clustered {
            let recorder = RingRecorder(selfID: config.id, remembered: remembered, log: log, spawner: environment.spawner, logger: logger)
            membership.onRingChanged { recorder.record($0) }
            membership.onDeparture { await recorder.recordDeparture($0) }
            replicator?.onBackfilled { recorder.ringHeld() }
        }
        // A node whose log failed an fsync stops: no heartbeat, no
        // leadership, not ready.
        membership.serviceCheck { log.failure.map { "the event log failed: \($0)" } }
        replicator?.attach(membership)
        if !remembered.isEmpty {
            // A last life that announced its departure: the others may have
            // written without it since, whatever ring it comes back to.
            let left = remembered[config.id] == true
            replicator?.startedOn(ring: left ? [] : Set(remembered.filter { !$0.value }.keys).union([config.id]))
        }
        // Nor does one whose log is recovering from its peers' copies.
        if let replicator {
            membership.leadershipGate { replicator.recovering }
            // A node that leaves hands what it holds over first.
            membership.handover { await replicator.notYetHandedOver($0) }
        }
        self.replicator = replicator
        self.engine = engine
        self.copyCheckpointer = copyCheckpointer
        self.membership = membership
        self.dispatcher = Dispatcher(engine: engine, network: network, clock: environment.clock) { membership.route($0) }
        self.inbox = NodeInbox(engine: engine, membership: membership, replicator: replicator, logger: logger)
        self.feed = config.clustered
            ? .clustered(network: network, peerAddress: peerAddress, inbox: inbox, nodeID: config.id, logger: logger)
            : .standalone(log: log, nodeID: config.id, logger: logger)
    }

    /// The node's long-running parts in the order a `ServiceGroup` starts
    /// them (and stops them in reverse): the engine (which checkpoints and
    /// closes the log last), the replicator, membership.
    public var services: [any Service] {
        [engine] + (replicator.map { [$0] } ?? []) + [membership]
    }

    /// Runs the node's loops (timers, passivation, log shipping,
    /// membership) until the task is cancelled; the simulation's way of
    /// running a node, which never shuts down gracefully (it crashes).
    public func runLoops() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.engine.runLoops() }
            if let replicator = self.replicator {
                group.addTask { try? await replicator.run() }
            }
            group.addTask { try? await self.membership.run() }
        }
    }
}

/// Writes the ring to the log each time it changes, the newest first: a
/// write that finds a newer ring waiting writes that one next, so changes
/// that come fast cost one write each at most and never land out of order.
final class RingRecorder: Sendable {
    private struct State {
        var waiting: [String: Bool]?
        var writing = false
        /// The ring last asked to be recorded (at first, the one the log
        /// holds).
        var last: [String: Bool]
        /// The departure was asked for: every ring written from then on
        /// says this node left (a departure taken back still ends the
        /// life; the others may have written without it meanwhile).
        var departed = false
        /// The last life left, and this one has not backfilled a ring yet:
        /// the record keeps saying it left, so that a crash before then
        /// does not start the next life from a ring it does not hold.
        var leftLastLife: Bool
        /// Waiting for the write of the departure: whether it was written.
        var departureWaiters: [CheckedContinuation<Bool, Never>] = []
    }
    private let state: Mutex<State>
    private let selfID: String
    private let log: any LogStore
    private let spawner: any TaskSpawner
    private let logger: Logger

    /// `remembered`: the ring the log holds, from the last life.
    init(selfID: String, remembered: [String: Bool], log: any LogStore, spawner: any TaskSpawner, logger: Logger) {
        self.selfID = selfID
        self.state = Mutex(State(last: remembered, leftLastLife: remembered[selfID] == true))
        self.log = log
        self.spawner = spawner
        self.logger = logger
    }

    func record(_ ring: [String: Bool]) {
        let start = state.withLock { state -> Bool in
            state.last = ring
            state.waiting = ring
            guard !state.writing else { return false }
            state.writing = true
            return true
        }
        if start { write() }
    }

    /// This life backfilled its ring: the record may say it is a member.
    func ringHeld() {
        let ring = state.withLock { state -> [String: Bool]? in
            guard state.leftLastLife else { return nil }
            state.leftLastLife = false
            var ring = state.last
            ring[selfID] = false
            return ring
        }
        if let ring { record(ring) }
    }

    /// Records `ring` with this node as left, after whatever is being
    /// written; returns once it is in the log (true) or could not be
    /// (false).
    func recordDeparture(_ ring: [String: Bool]) async -> Bool {
        await withCheckedContinuation { continuation in
            let start = state.withLock { state -> Bool in
                state.departed = true
                state.waiting = ring
                state.departureWaiters.append(continuation)
                guard !state.writing else { return false }
                state.writing = true
                return true
            }
            if start { write() }
        }
    }

    /// One writer at a time, the newest ring each round.
    private func write() {
        spawner.spawn { [self] in
            while let (next, waiters) = state.withLock({ state -> ([String: Bool], [CheckedContinuation<Bool, Never>])? in
                guard var ring = state.waiting else {
                    state.writing = false
                    return nil
                }
                state.waiting = nil
                if state.departed || state.leftLastLife { ring[selfID] = true }
                defer { state.departureWaiters = [] }
                return (ring, state.departureWaiters)
            }) {
                var written = true
                do {
                    _ = try await log.append(AppendRequest(events: [], ring: next))
                } catch {
                    written = false
                    logger.warning("could not record the ring", metadata: ["error": "\(error)"])
                }
                for waiter in waiters { waiter.resume(returning: written) }
            }
        }
    }
}
