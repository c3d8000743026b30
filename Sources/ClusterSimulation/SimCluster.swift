import LogStorage
import Logging
import Membership
import Node
import NodeRuntime
import OrderDomain
import Replication
import Wire

/// One API node of the simulated cluster, across its lives: its disk
/// survives a crash (what was synced of it), its clock skew is its own.
final class SimNode: @unchecked Sendable {
    let id: String
    /// What the node's log file holds while it is down; nil: no file (a
    /// new node, or a replaced disk).
    var disk: LogImage?
    /// The running process, if any.
    var life: NodeLife?
    var lives = 0
    /// Wall-clock skew of this machine, ms.
    var wallSkewMs: Int64 = 0

    init(id: String) {
        self.id = id
    }

    /// Left the cluster for good (a graceful leave): never started again.
    var departed = false

    /// The life being stopped with SIGTERM to be started again on its disk
    /// (an upgrade), while it runs on after leaving.
    var upgrading: NodeLife?

    var isUp: Bool { life != nil }
    var isPaused: Bool { life?.executor.state == .paused }

    /// The node's disk was replaced and it has not recovered its log from
    /// its peers yet (it is down, or still recovering).
    var diskLost = false
    var recoveredFromDiskLoss: Bool {
        guard diskLost else { return true }
        guard let node = life?.node, node.replicator?.recovering == nil else { return false }
        diskLost = false
        return true
    }
}

/// One life of one node: a process, from start to crash.
final class NodeLife: @unchecked Sendable {
    let executor: NodeExecutor
    let clock: SimClock
    var store: InMemoryLogStore!
    var network: SimPeerNetwork!
    /// Set once the node is assembled (its log opened).
    var node: OrderlyNode?

    init(executor: NodeExecutor, clock: SimClock) {
        self.executor = executor
        self.clock = clock
    }

    var inbox: NodeInbox? { node?.inbox }

    /// What a peer's request gets: the node's answer, or a refusal while it
    /// starts.
    func answer(_ request: PeerRequest, from sender: String) async -> PeerReply {
        if let inbox { return await inbox.answer(request, from: sender) }
        return request.refused("this node is starting")
    }
}

/// What a client hears back from a node: as an HTTP client would, a 2xx
/// with the order, a definite refusal (4xx), or nothing it can rely on
/// (a 503, a timeout, a refused connection).
enum ClientAnswer: Sendable, Equatable {
    case ok(outcome: Outcome?, OrderState)
    case refused(DomainError)
    case unknown(String)
}

/// The whole cluster in one process: every node's production code
/// (`OrderlyNode`) on an in-memory log, the simulated network and the
/// world's clock, plus the clients' executor.
final class SimCluster: @unchecked Sendable {
    let config: SimulationConfig
    let world: SimWorld
    let trace: Trace
    /// Every disk replaced in the run: which node's, and when.
    var diskLosses: [(node: String, atNs: Int64)] = []
    let network: SimNetwork
    private(set) var nodes: [SimNode] = []
    let clients: NodeExecutor
    /// Draws of the nodes' lives (log ids, clock origins) and their disks
    /// (sync times).
    private let lifeDraws: RandomStream
    private let diskDraws: RandomStream

    init(config: SimulationConfig, seed: UInt64, trace: Trace) {
        self.config = config
        self.trace = trace
        world = SimWorld(seed: seed)
        network = SimNetwork(world: world, trace: trace)
        clients = world.makeExecutor(name: "clients")
        lifeDraws = world.stream("lives")
        diskDraws = world.stream("disks")

        for index in 1...config.nodes {
            let node = SimNode(id: "api-\(index)")
            nodes.append(node)
            network.nodes[node.id] = node
        }
    }

    /// The nodes of the cluster now: every one but those that left.
    var ids: [String] { nodes.filter { !$0.departed }.map(\.id) }

    /// A new node (empty disk, the next free id) starts and joins through
    /// the others.
    @discardableResult
    func addNode() -> SimNode {
        let node = SimNode(id: "api-\(nodes.count + 1)")
        nodes.append(node)
        network.nodes[node.id] = node
        trace.record(world.nowNs, "\(node.id) joins the cluster")
        start(node)
        return node
    }

    /// SIGTERM: the node announces its departure, and its process ends
    /// with everything it wrote on its disk. It never comes back (unless
    /// no peer heard it leave: then it counts as crashed).
    func leave(_ node: SimNode) {
        guard node.life != nil else { return }
        node.departed = true
        stopAfterLeaving(node, shutdownNs: 0) { [self] known in
            trace.record(world.nowNs, known ? "\(node.id) stopped after leaving" : "\(node.id) stopped; no peer heard it leave")
            if !known {
                // It counts as crashed, not gone: it comes back on its disk
                // (the operator starts it again), and peers see it alive.
                node.departed = false
                world.after(1_000_000_000) { [self] in
                    if !node.isUp { start(node) }
                }
            }
        }
    }

    /// SIGTERM, then a start on the same disk `downNs` after the process
    /// ended (an upgrade): it comes back under the same id.
    func restartGracefully(_ node: SimNode, downNs: Int64, shutdownNs: Int64) {
        guard node.life != nil else { return }
        node.upgrading = node.life
        stopAfterLeaving(node, shutdownNs: shutdownNs, unlessDeparted: true) { [self] _ in
            trace.record(world.nowNs, "\(node.id) stopped after leaving; it starts again in \(downNs / 1_000_000) ms")
            world.after(downNs) { [self] in
                if !node.isUp && !node.departed { start(node) }
            }
        }
    }

    /// The node leaves; its process runs on for at least `shutdownNs` (a
    /// graceful stop drains and closes its services) and ends once its
    /// membership has said goodbye (handed over what it holds, or taken
    /// its departure back: `ClusterMembership.handOver`), as a graceful
    /// shutdown does, or after the handover's timeout and 5 s more, with
    /// everything it wrote on its disk. `stopped` then gets whether it
    /// left: it did not take its departure back, and a peer knows (gossip
    /// tells the rest). With `unlessDeparted`, a node that left for good
    /// meanwhile is left to that departure.
    private func stopAfterLeaving(_ node: SimNode, shutdownNs: Int64, unlessDeparted: Bool = false, _ stopped: @escaping (Bool) -> Void) {
        guard let life = node.life else { return }
        life.executor.fire { life.node?.membership.leave() }
        let deadlineNs = world.nowNs + (MembershipConfig().handoverTimeoutMs + 5_000) * 1_000_000
        let earliestNs = world.nowNs + shutdownNs
        func stopWhenKnown() {
            // The same life only: one the heal already stopped and started
            // again, or a crash ended, is not this stop's to end.
            guard node.life === life, !(unlessDeparted && node.departed) else { return }
            let finished = life.node?.membership.hasFinishedLeaving ?? false
            let left = life.node?.membership.members.contains { $0.id == node.id && $0.status == .left } ?? false
            let known = left && nodes.contains { peer in
                peer.id != node.id && !peer.departed
                    && peer.life?.node?.membership.members.contains { $0.id == node.id && $0.status == .left } == true
            }
            guard (finished && world.nowNs >= earliestNs) || world.nowNs >= deadlineNs else {
                world.after(100_000_000) { stopWhenKnown() }
                return
            }
            endGracefully(node)
            stopped(known)
        }
        world.after(100_000_000) { stopWhenKnown() }
    }

    /// The end of a graceful stop: the process exits with everything it
    /// wrote on its disk.
    private func endGracefully(_ node: SimNode) {
        guard let life = node.life else { return }
        world.kill(life.executor)
        node.disk = life.store.crash(keepingUnsynced: life.store.unsyncedCount)
        node.life = nil
        node.upgrading = nil
    }

    /// A node that is still stopping for an upgrade stops now and starts
    /// again on its disk (the heal: every process runs again).
    func finishUpgrade(_ node: SimNode) {
        guard let life = node.life, node.upgrading === life, !node.departed else { return }
        endGracefully(node)
        trace.record(world.nowNs, "\(node.id) stops now and starts again on its disk (the heal)")
        start(node)
    }

    /// Every node of the ring is up, on the same ring, and holds the
    /// orders that ring gives it (backfilled): what a node that left held
    /// is where the ring now puts it.
    var settledAfterChurn: Bool {
        let ring = Set(ids)
        for node in nodes where !node.departed {
            guard let running = node.life?.node else { return false }
            guard running.membership.ringMembers == ring, running.replicator?.backfilled(ring: ring) ?? true else { return false }
        }
        return true
    }

    func node(_ id: String) -> SimNode { network.nodes[id]! }

    // MARK: Lives

    /// Starts a process of the node on its disk.
    func start(_ node: SimNode) {
        precondition(node.life == nil, "\(node.id) is running")
        node.lives += 1
        let executor = world.makeExecutor(name: "\(node.id)#\(node.lives)")
        let offset = lifeDraws.uniform(1_000_000_000...1_000_000_000_000)
        let life = NodeLife(executor: executor, clock: SimClock(world: world, executor: executor, node: node, monotonicOffsetNs: offset))
        life.network = SimPeerNetwork(network: network, nodeID: node.id, life: life)
        let newLogID = String(lifeDraws.next(), radix: 16)
        let clock = life.clock
        let world = self.world
        let disk = diskDraws
        let syncNs = config.syncDelayNs
        let slowSyncProbability = config.slowSyncProbability
        life.store = InMemoryLogStore(origin: node.id, disk: node.disk, newLogID: newLogID, clock: { clock.wallMs }) { sync in
            let delay = disk.chance(slowSyncProbability) ? disk.uniform(syncNs.upperBound...syncNs.upperBound * 20) : disk.uniform(syncNs)
            _ = clock.schedule(after: .nanoseconds(delay), sync)
        }
        node.life = life
        trace.record(world.nowNs, "\(node.id) starts (life \(node.lives), log \(life.store.logID), \(node.disk == nil ? "empty disk" : "own disk"))")

        var nodeConfig = NodeConfig(id: node.id, clustered: true)
        nodeConfig.engine.idleTimeout = config.idleTimeout
        nodeConfig.engine.checkpointEveryEvents = config.checkpointEvery
        nodeConfig.engine.passivationCheckpointEvents = config.passivationCheckpointEvents
        nodeConfig.engine.holdTimeoutMs = config.holdTimeoutMs
        nodeConfig.replication.acks = config.acks
        nodeConfig.replication.partitionMode = config.mode
        nodeConfig.replicationFactor = config.replicationFactor
        nodeConfig.membership.seeds = nodes.map(\.id).filter { $0 != node.id }
        let environment = NodeEnvironment(clock: life.clock, spawner: SimSpawner(executor: executor), randomSeed: lifeDraws.next())
        let logger = Logger(label: "orderly.node") { [trace, world] label in
            SimLogHandler(trace: trace, world: world, level: .info)
        }
        let store = life.store!
        let network = life.network!
        let finalConfig = nodeConfig
        let trace = self.trace
        executor.spawn {
            do {
                let assembled = try await OrderlyNode.assemble(
                    config: finalConfig, log: store, network: network, peerAddress: node.id, environment: environment, logger: logger)
                life.node = assembled
                await assembled.runLoops()
            } catch {
                trace.record(world.nowNs, "\(node.id) failed to start: \(error)")
            }
        }
    }

    /// SIGKILL with power loss: the process is gone, and of what its log
    /// did not sync a prefix may survive (`keepingUnsynced` transactions).
    func crash(_ node: SimNode, keepingUnsynced: Int) {
        guard let life = node.life else { return }
        world.kill(life.executor)
        node.disk = life.store.crash(keepingUnsynced: keepingUnsynced)
        node.life = nil
        node.upgrading = nil
        trace.record(world.nowNs, "\(node.id) crashes (kept \(keepingUnsynced) unsynced transactions)")
    }

    /// The node's disk is replaced: it starts again with an empty log.
    func replaceDisk(_ node: SimNode) {
        crash(node, keepingUnsynced: 0)
        node.disk = nil
        node.diskLost = true
        diskLosses.append((node.id, world.nowNs))
        trace.record(world.nowNs, "\(node.id) loses its disk")
    }

    /// The node's log file is replaced by `backup`, an older snapshot of
    /// it (same log id): it goes back in time, and recovers what it wrote
    /// since from its peers.
    func restore(_ node: SimNode, from backup: LogImage) {
        crash(node, keepingUnsynced: 0)
        // As `orderly restore` leaves it (`Snapshot.forgetOwnLog`).
        node.disk = backup.withoutOwnLog(of: node.id)
        node.diskLost = true
        diskLosses.append((node.id, world.nowNs))
        trace.record(world.nowNs, "\(node.id)'s log is restored from a backup (own log through \(backup.lastOffset(of: node.id)))")
    }

    func pause(_ node: SimNode) {
        guard let life = node.life else { return }
        world.pause(life.executor)
        trace.record(world.nowNs, "\(node.id) pauses")
    }

    func resume(_ node: SimNode) {
        guard let life = node.life else { return }
        world.resume(life.executor)
        trace.record(world.nowNs, "\(node.id) resumes")
    }

    // MARK: Clients

    /// A client's HTTP call to a node: the command runs on the node (its
    /// dispatcher, as its HTTP API would call it); the answer comes back
    /// unless the node dies first or the client gives up after `timeout`.
    func call(via nodeID: String, _ orderID: ClientID, _ call: ForwardedCall, timeout: Duration, draws: RandomStream) async -> ClientAnswer {
        let pending = PendingAnswer()
        let world = self.world
        let clients = self.clients
        let latency = config.clientLatencyNs
        return await withCheckedContinuation { (continuation: CheckedContinuation<ClientAnswer, Never>) in
            pending.continuation = continuation
            pending.timer = world.after(timeout.nanosecondsClamped) { pending.finish(.unknown("timed out after \(timeout)")) }
            guard let life = node(nodeID).life else {
                world.after(draws.uniform(latency)) { clients.fire { pending.finish(.unknown("connection refused")) } }
                return
            }
            world.after(draws.uniform(latency)) {
                guard life.executor.state != .dead else { return }
                life.executor.spawn {
                    let answer: ClientAnswer
                    if let dispatcher = life.node?.dispatcher {
                        answer = await Self.run(call, orderID, on: dispatcher)
                    } else {
                        answer = .unknown("the node is starting")
                    }
                    world.after(draws.uniform(latency)) { clients.fire { pending.finish(answer) } }
                }
            }
        }
    }

    private static func run(_ call: ForwardedCall, _ orderID: ClientID, on dispatcher: Dispatcher) async -> ClientAnswer {
        do {
            switch call {
            case .read:
                return .ok(outcome: nil, try await dispatcher.state(of: orderID))
            case .command(let command):
                switch try await dispatcher.execute(orderID, command) {
                case .success(let result): return .ok(outcome: result.outcome, result.state)
                case .failure(let error): return .refused(error)
                }
            }
        } catch {
            return .unknown("\(error)")
        }
    }
}

/// A client's call waiting for its answer or its timeout.
private final class PendingAnswer: @unchecked Sendable {
    var continuation: CheckedContinuation<ClientAnswer, Never>?
    var timer: SimTimer?

    func finish(_ answer: ClientAnswer) {
        guard let continuation else { return }
        self.continuation = nil
        timer?.cancel()
        continuation.resume(returning: answer)
    }
}

/// Node logs go to the run's trace, stamped with virtual time.
struct SimLogHandler: LogHandler {
    let trace: Trace
    unowned let world: SimWorld
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    init(trace: Trace, world: SimWorld, level: Logger.Level) {
        self.trace = trace
        self.world = world
        self.logLevel = level
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = event.metadata.map { metadata.merging($0) { $1 } } ?? metadata
        let node = merged["node"].map { "\($0)" } ?? "?"
        let rest = merged.filter { $0.key != "node" }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        trace.record(world.nowNs, hashed: false, "\(node) \(event.level): \(event.message)\(rest.isEmpty ? "" : " [\(rest)]")")
    }
}
