import HashRing
import Logging
import Membership
import NodeRuntime
import OrderDomain
import Replication
import ServiceLifecycle
import Synchronization
import Wire

/// Why a member does not yet hold a ring without a node that leaves, and
/// whether it answered at all.
public struct HandoverWait: Sendable, Equatable {
    public var why: String
    public var answered: Bool

    public init(why: String, answered: Bool) {
        self.why = why
        self.answered = answered
    }
}

/// The membership shell: owns the pure core, runs its ticks, carries its
/// gossip over the peer protocol, and derives the ring from the view.
/// An order's leader is the first member of its preference list that may
/// lead (see `mayLead`); the others replicate.
public final class ClusterMembership: Service, ReplicaDirectory, Sendable {
    public let replicationFactor: Int
    public let partitionMode: PartitionMode
    private let core: Mutex<MembershipCore>
    /// What routing reads, rebuilt when a member's status changes or the
    /// released set does, so routing a command reads a snapshot.
    private struct Routing {
        var ring = HashRing(nodes: [:])
        /// The ring's nodes, sorted (what followers compare, see `VouchView`).
        var ringNodes: [String] = []
        var members: [String: Member] = [:]
        var released: Set<String> = []
    }
    private let routing = Mutex(Routing())
    /// Per peer, until when (monotonic ms) its lease to this node holds
    /// (`MembershipCore.leaseExpiries`), renewed by every digest.
    private let leases = Mutex<[String: Int64]>([:])
    /// Set once this node announces that it leaves: it leads nothing more.
    private let leaving = Atomic<Bool>(false)
    /// Set by `leave()`: the run loop ends and says goodbye.
    private let leaveRequested = Atomic<Bool>(false)
    private let finishedLeaving = Atomic<Bool>(false)
    private let handoverCheck = Mutex<(@Sendable ([String: String]) async -> [String: HandoverWait])?>(nil)
    /// Why this node is out of service (its log failed), if it is: it then
    /// sends no heartbeat (its peers find it dead and take its orders over)
    /// and leads nothing.
    private struct OutOfService: Sendable {
        let reason: @Sendable () -> String?
    }
    private let outOfServiceCheck = Mutex<OutOfService?>(nil)
    private let leadershipGateCheck = Mutex<OutOfService?>(nil)
    /// Where the ring goes to be recorded, and what was last sent there.
    private let ringRecorder = Mutex<(@Sendable ([String: Bool]) -> Void)?>(nil)
    /// Where the departure goes to be recorded before it is announced
    /// (`onDeparture`): whether it was.
    private let departureRecorder = Mutex<(@Sendable ([String: Bool]) async -> Bool)?>(nil)
    private let recordedRing: Mutex<[String: Bool]?>
    private let deadAfterMs: Int64
    /// When this life's membership began (monotonic).
    private let startedMs: Int64
    private let network: any PeerNetwork
    private let clock: any NodeClock
    private let spawner: any TaskSpawner
    /// Picks the occasional dead member to gossip to.
    private let random: Mutex<SplitMix64>
    private let logger: Logger
    private let epochCounter = Atomic<UInt64>(1)
    private let suspectAfterMs: Int64

    /// False until a peer's view has reached this node, when it must join
    /// an existing cluster: until then it would take itself for the whole
    /// cluster and lead every order alone.
    private let joinedFlag: Atomic<Bool>

    /// - Parameters:
    ///   - mustJoin: the node has seeds, or its log shows it was part of a
    ///     cluster before; it serves no order before it has heard from a
    ///     peer.
    ///   - remembered: the ring its log recorded (see `onRingChanged`): a
    ///     node restarted where it hears only some of its peers still places
    ///     orders on the whole ring.
    public init(
        self member: Member, config: MembershipConfig, replicationFactor: Int, partitionMode: PartitionMode = .consistent,
        mustJoin: Bool = false, remembered: [String: Bool] = [:], network: any PeerNetwork, environment: NodeEnvironment, logger: Logger
    ) {
        self.joinedFlag = Atomic(!mustJoin)
        self.replicationFactor = replicationFactor
        self.partitionMode = partitionMode
        self.deadAfterMs = config.deadAfterMs
        self.suspectAfterMs = config.suspectAfterMs
        self.selfID = member.id
        var core = MembershipCore(selfMember: member, config: config, nowMs: environment.clock.monotonicMs)
        core.remember(remembered, nowMs: environment.clock.monotonicMs)
        self.core = Mutex(core)
        self.recordedRing = Mutex(remembered.isEmpty ? nil : remembered.merging([member.id: false]) { $1 })
        self.network = network
        self.clock = environment.clock
        self.startedMs = environment.clock.monotonicMs
        self.spawner = environment.spawner
        self.random = Mutex(SplitMix64(seed: environment.randomSeed))
        self.logger = logger
        rebuildRing()
    }

    /// `body` gets the ring each time it changes (every member heard of, and
    /// whether it left), to record it in the log: the next life starts from
    /// it (`remembered`). Set before the node runs.
    public func onRingChanged(_ body: @escaping @Sendable ([String: Bool]) -> Void) {
        ringRecorder.withLock { $0 = body }
        recordRingIfChanged()
    }

    /// `body` records, durably, the ring with this node marked as left,
    /// before the departure is announced; false if it could not. From the
    /// first digest that announces it, the others may write without this
    /// node, so its next life must not take the ring it recorded for one
    /// whose orders it holds (`Replicator.startedOn`). Set before the node
    /// runs.
    public func onDeparture(_ body: @escaping @Sendable ([String: Bool]) async -> Bool) {
        departureRecorder.withLock { $0 = body }
    }

    /// The ring as it is recorded: every member heard of, and whether it
    /// left.
    private var ringRecord: [String: Bool] {
        Dictionary(uniqueKeysWithValues: members.map { ($0.id, $0.status == .left) })
    }

    private func recordRingIfChanged() {
        let ring = ringRecord
        let changed = recordedRing.withLock { recorded -> Bool in
            guard recorded != ring else { return false }
            recorded = ring
            return true
        }
        if changed, let record = ringRecorder.withLock({ $0 }) { record(ring) }
    }

    /// Sets what says this node is out of service (see `outOfService`).
    public func serviceCheck(_ reason: @escaping @Sendable () -> String?) {
        outOfServiceCheck.withLock { $0 = OutOfService(reason: reason) }
    }

    /// Sets what says this node may not lead yet (its log is recovering
    /// from its peers' copies): it heartbeats, but leads nothing.
    public func leadershipGate(_ reason: @escaping @Sendable () -> String?) {
        leadershipGateCheck.withLock { $0 = OutOfService(reason: reason) }
    }
    private var notYetLeading: String? { leadershipGateCheck.withLock { $0 }?.reason() }

    /// Why this node is out of service, if it is: its log failed. It sends
    /// no heartbeat and leads nothing until it is restarted.
    public var outOfService: String? { outOfServiceCheck.withLock { $0 }?.reason() }

    public var nodeID: String { selfID }
    private let selfID: String
    public var members: [Member] { core.withLock { $0.view } }
    public var currentRing: HashRing { routing.withLock { $0.ring } }

    public func advertise(http: String) {
        core.withLock { $0.advertise(http: http) }
    }

    /// Grows on every change of the view (and when this process finds it
    /// was frozen): see `ReplicaDirectory.epoch`.
    public var epoch: UInt64 { epochCounter.load(ordering: .sequentiallyConsistent) }

    public var joined: Bool { joinedFlag.load(ordering: .sequentiallyConsistent) }

    /// Whether every live peer has seen this node alive in this life (see
    /// `SettleTracker`).
    private let settle = Mutex(SettleTracker())

    /// True once every live peer has seen this node alive in its current
    /// incarnation. Until then a peer may still lead this node's orders in
    /// its stead, so this node leads none.
    public var settled: Bool {
        let incarnation = core.withLock { $0.me.incarnation }
        let nowMs = clock.monotonicMs
        let mayLead = joined && notYetLeading == nil
        let (settled, became) = settle.withLock {
            $0.settled(joined: mayLead, incarnation: incarnation, livePeers: livePeers, nowMs: nowMs, suspectAfterMs: suspectAfterMs)
        }
        if became {
            // Orders loaded while others led them are reloaded (and gathered).
            bumpEpoch()
            logger.info("every live peer sees this node alive: it leads its orders", metadata: ["peers": "\(livePeers().sorted())"])
        }
        return settled
    }

    /// Peers alive or suspect and not cut off: those that must have seen
    /// this node before it leads.
    private func livePeers() -> Set<String> {
        let blocked = network.filter.blockedIDs
        return Set(routing.withLock { $0.members }.filter { id, member in
            id != selfID && (member.status == .alive || member.status == .suspect) && !blocked.contains(id)
        }.keys)
    }

    /// This node's view of who leads which order, now.
    private var leadership: LeadershipView {
        let snapshot = routing.withLock { $0 }
        return LeadershipView(
            selfID: selfID, mode: partitionMode, replicationFactor: replicationFactor, ring: snapshot.ring, ringNodes: snapshot.ringNodes,
            members: snapshot.members, released: snapshot.released, joined: joined,
            selfMayLead: settled && !leaving.load(ordering: .sequentiallyConsistent) && outOfService == nil, blocked: network.filter.blockedIDs,
            leases: leases.withLock { $0 }, deadAfterMs: deadAfterMs)
    }

    /// Where an order's commands go, from the current view.
    public func route(_ orderID: ClientID) -> Route {
        guard joined else { return .unavailable("this node is still joining the cluster") }
        return leadership.route(orderID.rawValue, nowMs: clock.monotonicMs)
    }

    /// The preference list and the member that leads the order now (nil
    /// when none of its replicas may).
    public func placement(of orderID: ClientID) -> (preferenceList: [String], leader: String?) {
        leadership.placement(orderID.rawValue)
    }

    public func preferenceList(for orderID: ClientID) -> [String] {
        routing.withLock { $0.ring }.preferenceList(for: orderID.rawValue, count: replicationFactor)
    }

    public func leads(_ orderID: ClientID) -> Bool {
        if case .local = route(orderID) { return true }
        return false
    }

    public func whyNotLeading(_ orderID: ClientID) -> String? {
        switch route(orderID) {
        case .local: return nil
        case .remote(let leader, _): return "order \(orderID) is led by \(leader) in this node's view"
        case .unavailable(let reason): return reason
        }
    }

    public var ringMembers: Set<String> {
        Set(routing.withLock { $0.ringNodes })
    }

    public var ringNodes: [String] { routing.withLock { $0.ringNodes } }

    /// Per peer whose lease to this node holds now: the ms it has left.
    public var leasesRemainingMs: [String: Int64] {
        let now = clock.monotonicMs
        return leases.withLock { $0 }.filter { $0.value > now }.mapValues { $0 - now }
    }

    /// The members whose orders this node lets others lead.
    public var released: Set<String> { routing.withLock { $0.released } }

    public var departed: Set<String> { Set(members.filter { $0.status == .left }.map(\.id)) }

    public var incarnation: UInt64 { core.withLock { $0.me.incarnation } }

    public func departedIncarnation(of id: String) -> UInt64? {
        routing.withLock { $0.members[id] }.flatMap { $0.status == .left ? $0.incarnation : nil }
    }

    /// The nodes this node lets lead, on its ring (see `VouchView`).
    public var vouchView: VouchView { leadership.vouchView }

    public func reachablePeers() -> [String: String] { peers(.alive) }

    /// Members that left and still beat (they hand over what they hold
    /// before they stop), by id.
    public func departedPeers() -> [String: String] {
        let now = clock.monotonicMs
        let left = peers(.left)
        return core.withLock { core in left.filter { id, _ in core.heardFrom(id, withinMs: deadAfterMs, nowMs: now) } }
    }

    /// Members that left and have stopped: not heard from here for
    /// `--dead-after`, over a whole such window of this life. A handover
    /// they ran has ended: done, or taken back, and then they are members
    /// again. One that still beats may take its departure back.
    public func departedAndStopped() -> Set<String> {
        let now = clock.monotonicMs
        guard now - startedMs >= deadAfterMs else { return [] }
        let left = departed
        return core.withLock { core in left.filter { !core.heardFrom($0, withinMs: deadAfterMs, nowMs: now) } }
    }

    /// Members in `status`, not cut off and with a peer address, by id.
    private func peers(_ status: MemberStatus) -> [String: String] {
        let snapshot = routing.withLock { $0 }
        let blocked = network.filter.blockedIDs
        var peers: [String: String] = [:]
        for (id, member) in snapshot.members where id != selfID && member.status == status && !blocked.contains(id) && !member.peer.isEmpty {
            peers[id] = member.peer
        }
        return peers
    }

    /// Cuts this node off from the named members (see `PeerFilter`).
    public func partition(from ids: [String]) {
        let members = routing.withLock { $0.members }
        network.filter.block(ids.map { (id: $0, address: members[$0]?.peer ?? "") })
        bumpEpoch()
    }

    public var partitionedFrom: Set<String> { network.filter.blockedIDs }

    public func healPartition() {
        network.filter.clear()
        bumpEpoch()
    }

    private func bumpEpoch() {
        epochCounter.add(1, ordering: .sequentiallyConsistent)
    }

    /// Gossip from a peer.
    public func receive(_ digest: GossipDigest, from sender: String? = nil) {
        if let sender, let mine = digest.members.first(where: { $0.id == selfID }) {
            let incarnation = core.withLock { $0.me.incarnation }
            settle.withLock { $0.noteSeen(by: sender, as: mine, incarnation: incarnation) }
        }
        let directives = core.withLock { core in
            let directives = core.receive(digest, from: sender, nowMs: clock.monotonicMs)
            // Stored under the core's lock too, so an older reading never
            // replaces a newer one.
            let expiries = core.leaseExpiries
            leases.withLock { $0 = expiries }
            return directives
        }
        handle(directives)
        // Joined only once the peer's view is merged (and the ring rebuilt):
        // a node that counted as joined before would see no live peer, find
        // itself settled, and lead every order alone.
        if !joined && digest.members.contains(where: { $0.id != selfID }) {
            joinedFlag.store(true, ordering: .sequentiallyConsistent)
            logger.info("joined the cluster")
        }
    }

    /// Leaves the cluster for good, as a graceful shutdown does: `run`
    /// stops and announces the departure (the simulator's SIGTERM; a
    /// process leaves through its service group's shutdown).
    public func leave() {
        leaveRequested.store(true, ordering: .sequentiallyConsistent)
    }

    public func run() async throws {
        let interval = core.withLock { $0.config.heartbeatIntervalMs }
        var silenced = false
        while !Task.isShuttingDownGracefully && !Task.isCancelled && !leaveRequested.load(ordering: .sequentiallyConsistent) {
            beat(silenced: &silenced)
            try? await clock.sleep(for: .milliseconds(interval))
        }
        // A member suspect now may be dead in a moment (seed 3426, `--nodes
        // 5`: a node was stopped 860 ms after another's fsync failed, could
        // not hand over to it, and took its departure back; every node then
        // had to read the ring again, waiting for the failed one). Beating
        // on, as before the stop, this node waits until each suspect member
        // is alive again or dead, for at most `--dead-after`.
        if handoverCheck.withLock({ $0 }) != nil, outOfService == nil {
            let until = clock.monotonicMs + deadAfterMs
            while !Task.isCancelled, clock.monotonicMs < until, members.contains(where: { $0.id != selfID && $0.status == .suspect }) {
                beat(silenced: &silenced)
                try? await clock.sleep(for: .milliseconds(interval))
            }
        }
        // A member dead here cannot take over what this node holds: it
        // stops as a crashed node does, without announcing a departure
        // it would have to take back (each ring change costs every node a
        // backfill, which waits for the dead member).
        let dead = members.filter { $0.id != selfID && $0.status == .dead }.map(\.id)
        let noHandover = !dead.isEmpty ? Dictionary(uniqueKeysWithValues: dead.map { ($0, "dead here") }) : wouldLeaveOneHolder()
        if handoverCheck.withLock({ $0 }) != nil, let noHandover {
            leaving.store(true, ordering: .sequentiallyConsistent)
            logNoHandover(noHandover)
            finishedLeaving.store(true, ordering: .sequentiallyConsistent)
            return
        }
        // Announce the departure, so peers mark us left rather than dead:
        // they take our orders at once, so we lead none from here on.
        leaving.store(true, ordering: .sequentiallyConsistent)
        await handOver()
        finishedLeaving.store(true, ordering: .sequentiallyConsistent)
    }

    /// One heartbeat: failure detection and gossip, or silence while this
    /// node is out of service (peers find it dead, release it and lead its
    /// orders; it stays up only to say why it is not ready).
    private func beat(silenced: inout Bool) {
        if let reason = outOfService {
            if !silenced {
                logger.critical("this node is out of service: it stops its heartbeat and leads nothing until restarted", metadata: ["reason": "\(reason)"])
                silenced = true
                bumpEpoch()
            }
            return
        }
        let now = clock.monotonicMs
        if let pausedMs = settle.withLock({ $0.tick(nowMs: now, suspectAfterMs: suspectAfterMs) }) {
            // Frozen (SIGSTOP, a long pause): others may have led our
            // orders meanwhile, so what we hold in memory is suspect.
            logger.warning("this node was frozen; it leads nothing until every peer sees it alive again", metadata: ["paused_ms": "\(pausedMs)"])
            bumpEpoch()
        }
        let directives = random.withLock { random in core.withLock { $0.tick(nowMs: now, random: &random) } }
        handle(directives)
    }

    /// Set once `run` has said goodbye: handed over, or taken the
    /// departure back. The process may end.
    public var hasFinishedLeaving: Bool { finishedLeaving.load(ordering: .sequentiallyConsistent) }

    public var isLeaving: Bool { leaving.load(ordering: .sequentiallyConsistent) }

    /// Sets what tells, given the members this node hands over to (id and
    /// peer address), which of them do not yet hold a ring without it, why,
    /// and whether they answered (see `Replicator.notYetHandedOver`).
    public func handover(_ check: @escaping @Sendable ([String: String]) async -> [String: HandoverWait]) {
        handoverCheck.withLock { $0 = check }
    }

    /// The departure. A node that leaves may hold the only other copy of
    /// a write its origin acknowledged; once it is gone, no recovery waits
    /// for it. So it stays up, beating as a node that left and serving
    /// what it holds, until every other member of the ring holds the
    /// orders of a ring without it (they read its copies meanwhile). Found
    /// by seed 843 (`--mode available`): a node stopped as soon as a peer
    /// knew it left, the origin's disk was replaced, and its recovery put
    /// back a log without a write only the stopped node held.
    ///
    /// A member that does not answer for `--dead-after` cannot take
    /// anything over, nor is a handover longer than `handoverTimeoutMs`
    /// done: the node then takes its departure back (a new life, alive)
    /// and stops as a crashed node does; it keeps its place on the ring and
    /// recoveries wait for it. (With a member already dead here it never
    /// announces a departure: `run`.)
    private func handOver() async {
        let (timeoutMs, interval) = core.withLock { ($0.config.handoverTimeoutMs, $0.config.heartbeatIntervalMs) }
        let deadline = clock.monotonicMs + timeoutMs
        let check = handoverCheck.withLock { $0 }
        var waitingFor: [String: String] = [:]
        var reported: Set<String> = []
        // Since when each member has not answered: this node's own view
        // goes stale once it leaves (peers gossip no more to a node that
        // left), so the calls are its failure detector.
        var silentSince: [String: Int64] = [:]
        // Seed 2535 (a release build): a node that left came back on its
        // own disk to the ring its log had recorded before it left, took
        // that for a ring whose orders it held, and granted terms before
        // its backfill had read what the others wrote without it; a list's
        // majority that had never seen an acknowledged order answered it
        // as absent. The departure is on disk before anyone hears of it.
        if let record = departureRecorder.withLock({ $0 }) {
            var ring = ringRecord
            ring[selfID] = true
            guard await record(ring) else {
                logNoHandover([selfID: "its departure could not be recorded in its log"])
                return
            }
        }
        while true {
            await send(core.withLock { $0.leave() })
            guard let check else { break }
            // Every other member that has not left, as this node sees it.
            let others = members.filter { $0.id != selfID && $0.status != .left }
            // Another member left meanwhile (two stopped at once).
            if let alone = wouldLeaveOneHolder() {
                waitingFor = alone
                break
            }
            let blocked = network.filter.blockedIDs
            let asked = Dictionary(uniqueKeysWithValues: others.filter { !$0.peer.isEmpty && !blocked.contains($0.id) }.map { ($0.id, $0.peer) })
            let results = await check(asked)
            waitingFor = results.mapValues(\.why)
            for member in others where asked[member.id] == nil { waitingFor[member.id] = "not reachable" }
            if waitingFor.isEmpty { break }
            let now = clock.monotonicMs
            for member in others {
                if asked[member.id] == nil || results[member.id]?.answered == false {
                    silentSince[member.id] = silentSince[member.id] ?? now
                } else {
                    silentSince[member.id] = nil
                }
            }
            // One silent for as long as a dead node is: it takes nothing
            // over; do not wait out the timeout for it.
            if let (dead, _) = silentSince.sorted(by: { $0.key < $1.key }).first(where: { now - $0.value >= deadAfterMs }) {
                waitingFor = [dead: "silent for \(now - silentSince[dead]!) ms: \(waitingFor[dead] ?? "")"]
                break
            }
            if Set(waitingFor.keys) != reported {
                reported = Set(waitingFor.keys)
                logger.info("leaving: waits until the others hold the ring without this node", metadata: [
                    "peers": "\(Self.describe(waitingFor))",
                ])
            }
            if clock.monotonicMs >= deadline { break }
            try? await clock.sleep(for: .milliseconds(interval))
        }
        if waitingFor.isEmpty {
            logger.info("left the cluster")
            return
        }
        // It could not hand over: it stops as a crashed node does.
        await send(core.withLock { $0.rejoin() })
        logNoHandover(waitingFor)
    }

    /// Why leaving would leave one member holding every write from then
    /// on (nil: it would not). With the replication factor at 2 or more,
    /// a ring of one member acknowledges writes that rest on its disk
    /// alone, and a replaced or restored disk then loses them, though the
    /// node that left still holds them (seed 1844: a node left while
    /// another was away, and the last one's log was put back from a
    /// backup). Such a node stops as a crashed node does instead: it keeps
    /// its place on the ring, and recoveries wait for it.
    private func wouldLeaveOneHolder() -> [String: String]? {
        guard replicationFactor >= 2 else { return nil }
        let staying = members.filter { $0.id != selfID && $0.status != .left }.map(\.id)
        guard staying.count == 1 else { return nil }
        return [staying[0]: "the only member left on the ring: every write would rest on its disk alone"]
    }

    /// Sends each digest of `directives` and waits for the sends (at most
    /// 500 ms each): the process may end right after.
    private func send(_ directives: [MembershipDirective]) async {
        await withDiscardingTaskGroup { group in
            for case .sendGossip(let peer, let digest) in directives {
                group.addTask { await self.network.send(.gossip(digest), to: peer, timeout: .milliseconds(500)) }
            }
        }
    }

    private func logNoHandover(_ why: [String: String]) {
        logger.critical("could not hand over what this node holds: it stops as if it had crashed and keeps its place on the ring; start it again", metadata: [
            "peers": "\(Self.describe(why))",
        ])
    }

    /// `["api-2: why", ...]`, by id.
    private static func describe(_ why: [String: String]) -> [String] {
        why.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
    }

    private func handle(_ directives: [MembershipDirective]) {
        var ringChanged = false
        for directive in directives {
            switch directive {
            case .sendGossip(let peer, let digest):
                let network = self.network
                spawner.spawn { await network.send(.gossip(digest), to: peer, timeout: .seconds(1)) }
            case .memberChanged(let member, let previous):
                ringChanged = true
                logger.info("member \(member.status.rawValue)", metadata: [
                    "member": "\(member.id)", "previous": "\(previous?.rawValue ?? "unknown")", "incarnation": "\(member.incarnation)",
                ])
            case .releasedChanged(let released):
                ringChanged = true
                logger.info("released members changed", metadata: ["released": "\(released.sorted())"])
            }
        }
        if ringChanged {
            rebuildRing()
            bumpEpoch()
            recordRingIfChanged()
        }
    }

    /// Every member that has not left is on the ring: a dead node keeps its
    /// place, so its orders do not move while it is away.
    private func rebuildRing() {
        // Built and stored under the core's lock: built from one view and
        // stored after another thread stored a newer one, a snapshot would
        // lack a member the core knows, until the next change of the view
        // (seen: a joining node placed orders on a ring without a live
        // member, and a follower never copied that member's log).
        core.withLock { core in
            let view = core.view
            let onRing = view.filter { $0.status != .left }.map(\.id)
            let ring = HashRing(nodes: Dictionary(uniqueKeysWithValues: onRing.map { ($0, 1) }))
            let members = Dictionary(uniqueKeysWithValues: view.map { ($0.id, $0) })
            let snapshot = Routing(ring: ring, ringNodes: onRing.sorted(), members: members, released: core.released(nowMs: clock.monotonicMs))
            routing.withLock { $0 = snapshot }
        }
    }
}
