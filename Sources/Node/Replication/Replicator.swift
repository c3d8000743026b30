import HashRing
import LogStorage
import Logging
import Metrics
import NodeRuntime
import OrderDomain
import Replication
import ServiceLifecycle
import Synchronization
import Wire

/// The log-shipping shell of one node.
///
/// As an origin it serves fetches of its own log: a fetch from offset N is
/// also the follower's acknowledgement of everything before N, which the
/// `AckTracker` turns into released client replies. As a follower it runs
/// one fetch loop per reachable peer, storing each batch and its position in
/// one transaction before asking for the next. Nothing is buffered for a
/// follower: a batch is read from SQLite when asked for, so a slow follower
/// costs the origin no memory.
public final class Replicator: Service, ReplicationCoordinator, Sendable {
    public let config: ReplicationConfig
    let log: any LogStore
    let network: any PeerNetwork
    let clock: any NodeClock
    let spawner: any TaskSpawner
    let logger: Logger
    private let directoryBox = Mutex<(any ReplicaDirectory)?>(nil)
    /// In a struct, not as a bare closure: a function type held in a
    /// generic container is re-abstracted on every `withLock` access, and
    /// the thunks were written back and nested, one more pair per batch
    /// copied, so each call walked a chain as long as the node's uptime.
    private struct CopiedHook: Sendable {
        let call: @Sendable ([String: Int]) async -> Void
    }
    private let copiedHook = Mutex<CopiedHook?>(nil)

    struct State {
        var tracker = AckTracker()
        var nextToken: UInt64 = 1
        var ackWaiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
        var commitWaiters: [UInt64: (beyond: Int64, continuation: CheckedContinuation<Void, Never>)] = [:]
        /// Followers of this node's log: when each last fetched.
        var followerSeenMs: [String: Int64] = [:]
        /// The logs this node copies (see `FollowerState`).
        var follower = FollowerState()
        /// No backfill is running (the last one ended, done or not).
        var backfillFinished = true
        /// The ring this node's log recorded when it last ran (see
        /// `startedOn(ring:)`).
        var recordedRing: Set<String>?
        // Terms (see Replicator+Terms).
        /// The terms this node granted, per preference list (durable).
        var promises: [String: Term] = [:]
        var promisesLoaded = false
        /// The newest term this node granted in this life under each ring
        /// (its members, sorted and joined), and the newest of the terms
        /// it holds from before (its last lives, or adopted from its peers
        /// in a recovery), whose rings it does not know.
        var grantedUnderRing: [String: Term] = [:]
        var grantedBefore: Term = .none
        /// This node's log went back (a restore; a replaced disk in a
        /// cluster that holds anything; its peers held more of it than its
        /// disk): until it has recovered, its copies of the other logs may
        /// lack what it held before (`serveCopy`).
        var lostData = false
        /// The terms this node holds as leader, per preference list, and
        /// the view they were taken under.
        var held: [String: Term] = [:]
        var heldEpoch: UInt64 = 0
        /// Per list, what the replicas that granted the held term held
        /// then (see `TermFrontier`).
        var frontiers: [String: TermFrontier] = [:]
        /// The highest term number seen anywhere.
        var highestTerm: Int64 = 0
        /// Callers waiting for the term being asked for, per list.
        var acquiring: [String: [CheckedContinuation<Term, any Error>]] = [:]
        /// Reads waiting for their term to be confirmed, per list, and the
        /// lists whose confirmation rounds run (see `confirmRead`).
        var readsWaiting: [String: [(term: Term, continuation: CheckedContinuation<Void, any Error>)]] = [:]
        var readRounds: Set<String> = []
        /// Per follower and list: the term it was last asked to grant after
        /// the term was taken (see `askForGrants`).
        var grantsAsked: [String: Term] = [:]
        /// Recovery (see Replicator+Recovery): done, or what it waits for.
        var recovered = false
        var recoveryStatus = "\(Replicator.recoveringPrefix): it has not asked its peers yet"
        /// The last view told to the origins, and its sequence.
        var lastView: VouchView?
        var viewSequence: UInt64 = 0
        /// Per origin: the promises of the lists that hold it, as of a view
        /// sequence (see `view(for:)`).
        var originViews: [String: (sequence: UInt64, promises: [String: Term])] = [:]
    }

    public typealias CopyStatus = FollowerState.CopyStatus

    let state = Mutex(State())
    /// Told each time a backfill of the ring is done (`onBackfilled`).
    private let backfillObserver = Mutex<(@Sendable () -> Void)?>(nil)
    /// Gathering fetches to each replica, batched (see `GatherBatcher`).
    private let gathers: GatherBatcher
    private let lagTimer = Metrics.Timer(label: "orderly_replication_lag_seconds")
    private let copiedCounter = Counter(label: "orderly_events_replicated_total")
    /// Fetch rounds of the tail loops that brought events (events per
    /// round: `orderly_events_replicated_total` over this).
    private let copiedBatches = Counter(label: "orderly_replication_batches_total")
    private let ackTimeouts = Counter(label: "orderly_replication_ack_timeouts_total")
    /// Gathering fetches served, and the orders they asked for (orders per
    /// fetch: the second over the first).
    private let gatherFetches = Counter(label: "orderly_gather_fetches_total")
    private let gatherOrders = Counter(label: "orderly_gather_orders_total")
    /// Activations of orders no replica held, decided without a gather
    /// (see `TermFrontier`).
    private let gathersSkipped = Counter(label: "orderly_gather_skipped_total")

    public init(log: any LogStore, network: any PeerNetwork, config: ReplicationConfig, environment: NodeEnvironment, logger: Logger) {
        self.log = log
        self.network = network
        self.clock = environment.clock
        self.spawner = environment.spawner
        // A view of a new life outranks the last life's (see VouchView).
        state.withLock { $0.viewSequence = UInt64(max(0, environment.clock.wallMs)) << 16 }
        self.config = config
        self.logger = logger
        self.gathers = GatherBatcher(network: network, spawner: environment.spawner, timeout: config.gatherTimeout)
        log.onCommit { [weak self] offset in self?.committed(through: offset) }
    }

    private func committed(through offset: Int64) {
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            let due = state.commitWaiters.filter { $0.value.beyond < offset }
            for token in due.keys { state.commitWaiters[token] = nil }
            return due.map(\.value.continuation)
        }
        for continuation in ready { continuation.resume() }
    }

    /// MUST be set before the node serves (the membership is built after
    /// the peer listener that the replicator serves on).
    public func attach(_ directory: any ReplicaDirectory) {
        directoryBox.withLock { $0 = directory }
    }

    var directory: (any ReplicaDirectory)? { directoryBox.withLock { $0 } }

    /// `body` learns the orders each stored batch touched, with their event
    /// counts (the engine drops what it holds in memory of them; followers
    /// checkpoint them).
    public func onCopied(_ body: @escaping @Sendable ([String: Int]) async -> Void) {
        copiedHook.withLock { $0 = CopiedHook(call: body) }
    }
    public var epoch: UInt64 { directory?.epoch ?? 0 }

    // MARK: Leader side

    public func admit(_ orderID: ClientID) throws {
        guard let directory else { return }
        guard directory.joined else { throw EngineError.unavailable("this node is still joining the cluster") }
        if case .refuse(let reason) = requirement(orderID, directory) {
            throw EngineError.unavailable("order \(orderID) refuses writes on this side of a partition: \(reason)")
        }
    }

    private func requirement(_ orderID: ClientID, _ directory: any ReplicaDirectory, policy: AckPolicy? = nil) -> AckRequirement {
        AckRules.requirement(
            policy: policy ?? config.acks, mode: config.partitionMode, preferenceList: directory.preferenceList(for: orderID),
            leader: directory.nodeID, reachable: Set(directory.reachablePeers().keys))
    }

    public func confirmLeadership(_ orderID: ClientID, term: Term?) throws {
        guard let directory, !directory.leads(orderID) || !holds(term, for: orderID) else { return }
        throw EngineError.unavailable(
            "order \(orderID): this node stopped leading it while the write was replicated; the write is not acknowledged (retrying is safe)")
    }

    public func leads(_ orderID: ClientID) -> Bool {
        directory?.leads(orderID) ?? true
    }

    public func checkLeadership(_ orderID: ClientID) throws {
        guard let directory, let reason = directory.whyNotLeading(orderID) else { return }
        throw EngineError.unavailable("\(reason); nothing was written (retrying is safe)")
    }

    public func awaitReplicas(_ orderID: ClientID, through offset: Int64, term: Term?) async throws {
        try await awaitReplicas(orderID, through: offset, term: term, policy: config.acks)
    }

    public func awaitMajority(_ orderID: ClientID, through offset: Int64, term: Term?) async throws {
        try await awaitReplicas(orderID, through: offset, term: term, policy: config.acks == .leader ? .leader : .quorum)
    }

    private func awaitReplicas(_ orderID: ClientID, through offset: Int64, term: Term?, policy: AckPolicy) async throws {
        guard let directory, offset > 0 else { return }
        let followers: Set<String>
        let needed: Int
        switch requirement(orderID, directory, policy: policy) {
        case .refuse(let reason):
            throw EngineError.unavailable("order \(orderID): the write is not acknowledged: \(reason)")
        case .followers(let set, let count):
            (followers, needed) = (set, count)
        }
        guard needed > 0 else { return }
        // `all` waits for fewer when replicas drop out, but in consistent
        // mode never for fewer than `quorum` does.
        let list = directory.preferenceList(for: orderID)
        let floor = config.partitionMode == .consistent ? max(0, list.count / 2 + 1 - (list.contains(directory.nodeID) ? 1 : 0)) : 0
        // Consistent mode: a copy counts only from a follower that lets this
        // node lead the order and has granted its term (see `VouchView`).
        let fence = config.partitionMode == .consistent
            ? Fence(preferenceList: directory.preferenceList(for: orderID), ring: directory.ringNodes, leader: directory.nodeID, term: term) : nil
        let token = state.withLock { state -> UInt64 in
            defer { state.nextToken += 1 }
            return state.nextToken
        }
        if let term, let fence { askForGrants(of: term, group: TermGroup.key(fence.preferenceList), from: followers, directory: directory) }
        let timeout = config.ackTimeout
        let expire: @Sendable () -> Void = { [self] in
            let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                state.tracker.cancel(token: token)
                return state.ackWaiters.removeValue(forKey: token)
            }
            waiter?.resume(throwing: EngineError.unavailable(
                "order \(orderID): its replicas did not confirm the write within \(timeout); it is not acknowledged (retrying is safe)"))
        }
        do {
            try await clock.withDeadline(timeout, onTimeout: expire) {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    let released = state.withLock { state -> Bool in
                        if state.tracker.add(token: token, offset: offset, followers: followers, needed: needed, floor: floor, fence: fence) { return true }
                        state.ackWaiters[token] = continuation
                        return false
                    }
                    if released { continuation.resume() }
                }
            }
        } catch {
            ackTimeouts.increment()
            throw error
        }
    }

    private func acknowledge(_ follower: String, through offset: Int64, view: VouchView?) {
        if let view { noteGranted(view.promises) }
        let released = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.followerSeenMs[follower] = clock.wallMs
            return state.tracker.acknowledge(follower: follower, through: offset, view: view).compactMap { state.ackWaiters.removeValue(forKey: $0) }
        }
        for continuation in released { continuation.resume() }
    }

    /// A follower's view changed (it sends it at once, not with its next
    /// fetch, which may wait at this node for a commit).
    func noteView(_ follower: String, _ view: VouchView) {
        noteGranted(view.promises)
        let released = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.tracker.noteView(follower: follower, view).compactMap { state.ackWaiters.removeValue(forKey: $0) }
        }
        for continuation in released { continuation.resume() }
    }

    // MARK: Serving fetches

    /// Answers a fetch from a peer. Never throws: a failure is a refusal the
    /// peer logs and retries.
    func serve(_ request: FetchRequest) async -> FetchReply {
        do {
            switch request.scope {
            case .orders(let orderIDs):
                // A new leader asks. The terms this node granted are read
                // first: once granted, it acknowledges no older write, so
                // every write it acknowledged is in what it reads next. What
                // this node's transactors enqueued before (while it still led
                // the order, or stood in for it) must be in the answer too,
                // so wait until the writer has committed everything queued.
                gatherFetches.increment()
                gatherOrders.increment(by: orderIDs.count)
                if let recovering { throw EngineError.unavailable(recovering) }
                try await loadPromises()
                let promises = orderIDs.map { promise(for: $0) }
                try await log.barrier()
                var events: [EventRecord] = []
                var read: Set<ClientID> = []
                for orderID in orderIDs where read.insert(orderID).inserted {
                    events += try await log.events(orderID: orderID.rawValue, afterVersion: 0)
                }
                return FetchReply(events: events, throughOffset: 0, holderLastOffset: 0, refusal: nil, promises: promises)
            case .log(let origin, let fromOffset, let eventsMax, let waitMs, let previousEventID, let previousChecksum, let previousHeld):
                if origin == log.origin {
                    return try await serveOwn(
                        follower: request.follower, view: request.view, fromOffset: fromOffset, eventsMax: eventsMax, waitMs: waitMs,
                        previous: previousEventID.map { ($0, previousChecksum, previousHeld) })
                }
                return try await serveCopy(origin: origin, follower: request.follower, fromOffset: fromOffset, eventsMax: eventsMax)
            }
        } catch {
            logger.warning("fetch refused", metadata: ["follower": "\(request.follower)", "error": "\(error)"])
            return FetchReply(events: [], throughOffset: 0, holderLastOffset: 0, refusal: "\(error)")
        }
    }

    private func serveOwn(
        follower: String, view: VouchView?, fromOffset: Int64, eventsMax: UInt32, waitMs: UInt32,
        previous: (id: String, checksum: UInt32, held: Bool)?
    ) async throws -> FetchReply {
        let committed = log.committedOffset
        // A log that is recovering may lack what it wrote (a replaced disk,
        // a restore): served now, a peer's backfill would take it as whole.
        // The refusal sends the peer to the other copies instead.
        if let recovering {
            // Whether its disk still holds its own log (a restart, not a
            // replaced or restored disk): a node that lost its own data
            // waits for such an origin (see `backfill`).
            let refusal = committed > 0 && recovering.hasPrefix(Self.recoveringPrefix)
                ? Self.recoveringWithOwnLogPrefix + recovering.dropFirst(Self.recoveringPrefix.count) : recovering
            return FetchReply(events: [], throughOffset: 0, holderLastOffset: committed, refusal: refusal)
        }
        if let refusal = FetchServing.ownLogRefusal(follower: follower, origin: log.origin, fromOffset: fromOffset, committed: committed) {
            // This node's data was replaced or lost its tail: say so loudly.
            return FetchReply(events: [], throughOffset: 0, holderLastOffset: committed, refusal: refusal)
        }
        // The follower's copy and this log must agree where it stands; once
        // checked, what this process serves it since continues the chain.
        if let previous, fromOffset > 1, state.withLock({ $0.tracker.positions[follower] }) != fromOffset - 1 {
            let here = try await log.scan(origin: log.origin, fromOffset: fromOffset - 1, limit: 1).first
            if let refusal = FetchServing.identityRefusal(
                follower: follower, origin: log.origin, offset: fromOffset - 1, followerSaw: previous.id, checksum: previous.checksum,
                held: previous.held, here: here.flatMap { $0.offset == fromOffset - 1 ? $0 : nil })
            {
                logger.error("a follower's copy disagrees with this log", metadata: ["follower": "\(follower)", "reason": "\(refusal)"])
                return FetchReply(events: [], throughOffset: 0, holderLastOffset: committed, refusal: refusal)
            }
        }
        acknowledge(follower, through: fromOffset - 1, view: view)
        var read = try await ownEvents(from: fromOffset, max: eventsMax)
        if read.events.isEmpty && waitMs > 0 && read.committed < fromOffset {
            await waitForCommit(beyond: fromOffset - 1, timeout: .milliseconds(Int(waitMs)))
            read = try await ownEvents(from: fromOffset, max: eventsMax)
        }
        let (through, holderLast) = FetchServing.ownReply(read.events, complete: read.complete, fromOffset: fromOffset, committed: read.committed)
        return FetchReply(events: read.events, throughOffset: through, holderLastOffset: holderLast, refusal: nil)
    }

    /// Committed own events from an offset, at most `max` and one batch,
    /// whether they are all there are up to the committed end, and that end.
    private func ownEvents(from offset: Int64, max: UInt32) async throws -> (events: [EventRecord], complete: Bool, committed: Int64) {
        let committed = log.committedOffset
        guard offset <= committed else { return ([], true, committed) }
        let limit = Int(min(max, ReplicationCodec.eventsPerBatchMax))
        let scanned = try await log.scan(origin: log.origin, fromOffset: offset, limit: limit)
        let (events, complete) = FetchServing.ownBatch(scanned, limit: limit, committed: committed)
        return (events, complete, committed)
    }

    private func serveCopy(origin: String, follower: String, fromOffset: Int64, eventsMax: UInt32) async throws -> FetchReply {
        // A node whose log went back (a replaced disk, a restore) holds,
        // until it has recovered, copies that may lack what it held before:
        // a backfill that read them while the origin was away or recovering
        // would take the log as whole without a write only the origin's
        // disk still holds. (Found by seed 71321, `--customers-per-second
        // 40`, a release build of a97d067: a peer restored from a backup
        // older than a held payment served its copies; the reader took its
        // ring of two as held and answered a read of the order without the
        // payment.) The refusal makes that backfill wait. An origin reading
        // its own log back (its recovery) still gets what is here.
        if origin != follower, let reason = state.withLock({ $0.lostData && !$0.recovered ? $0.recoveryStatus : nil }) {
            return FetchReply(events: [], throughOffset: 0, holderLastOffset: 0, refusal: "\(Self.copiesWentBackPrefix) (\(reason))")
        }
        let position = try await log.replicaPositions()[origin] ?? 0
        let limit = Int(min(eventsMax, ReplicationCodec.eventsPerBatchMax))
        let scanned = try await log.scan(origin: origin, fromOffset: fromOffset, limit: limit)
        let events = FetchServing.capped(scanned)
        let (through, holderLast) = FetchServing.copyReply(events, scanned: scanned.count, limit: limit, fromOffset: fromOffset, position: position)
        return FetchReply(events: events, throughOffset: through, holderLastOffset: holderLast, refusal: nil)
    }

    private func waitForCommit(beyond offset: Int64, timeout: Duration) async {
        let token = state.withLock { state -> UInt64 in
            defer { state.nextToken += 1 }
            return state.nextToken
        }
        let wake: @Sendable () -> Void = { [self] in
            state.withLock { $0.commitWaiters.removeValue(forKey: token) }?.continuation.resume()
        }
        try? await clock.withDeadline(timeout, onTimeout: wake) {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                state.withLock { $0.commitWaiters[token] = (offset, continuation) }
                // A commit between the caller's read and the registration
                // would not wake us: look again now that we are registered.
                if log.committedOffset > offset { wake() }
            }
        }
    }

    // MARK: Follower side

    @discardableResult
    public func gather(_ orderID: ClientID, term: Term?) async throws -> Bool {
        guard let directory else { return false }
        let list = directory.preferenceList(for: orderID)
        let reachable = directory.reachablePeers()
        let others = list.filter { $0 != directory.nodeID }.compactMap { id in reachable[id].map { (id: id, address: $0) } }
        let selfID = directory.nodeID
        if let term, config.partitionMode == .consistent, list.contains(selfID),
            frontierCovers(TermGroup.key(list), term: term, replicas: list.count),
            try await log.events(orderID: orderID.rawValue, afterVersion: 0).isEmpty
        {
            // The replicas that granted the term held nothing of the order
            // this node's copies lack, and they hold nothing of it here: a
            // gather would come back empty.
            gathersSkipped.increment()
            return true
        }
        var events: [EventRecord] = []
        var answered = 0
        /// What each replica that counts holds of the order, by event id.
        var held: [(id: String, address: String, events: Set<String>)] = []
        let answers = await gathers.gather(orderID, from: others, follower: selfID)
        for (id, address) in others {
            guard let reply = answers[id] else { continue }
            if let term {
                // Only a replica that granted this term counts: it
                // acknowledges no older write after it granted.
                if let promise = reply.promise, promise > term { noteTerm(promise) }
                guard reply.promise == term else { continue }
            }
            answered += 1
            held.append((id, address, Set(reply.events.map(\.eventID))))
            // Only this order's events (a batch's answer is split by order).
            events += reply.events.filter { $0.origin != selfID }
        }
        // Any majority of the list shares a member with the nodes heard
        // from (this one included) once they are enough: then every
        // acknowledged event of the order is here.
        let heard = answered + (list.contains(selfID) ? 1 : 0)
        let needed = GatherRule.repliesNeeded(replicas: list.count)
        if config.partitionMode == .consistent && heard < needed {
            throw EngineError.unavailable(
                "order \(orderID): heard from \(heard) of its \(list.count) replicas, \(needed) needed to be sure no acknowledged event is missing")
        }
        if !events.isEmpty {
            let copied = try await log.replicate(ReplicatedBatch(origin: "", events: events, throughOffset: nil, deadlines: timers(events)))
            if copied > 0 {
                logger.info("gathered missing events", metadata: ["order": "\(orderID)", "events": "\(copied)"])
            }
        }
        if config.partitionMode == .consistent, term != nil, list.contains(selfID) {
            try await commitHeld(orderID, list: list, held: held)
        }
        return false
    }

    /// Whether the replicas that granted `term` for `key` held, when they
    /// granted it, nothing this node's copies have not reached since, for
    /// enough of them to meet every majority of the list with this node.
    func frontierCovers(_ key: String, term: Term, replicas: Int) -> Bool {
        let (covered, newly) = state.withLock { state -> (Bool, Bool) in
            guard state.held[key] == term, var frontier = state.frontiers[key], frontier.term == term else { return (false, false) }
            if frontier.isCovered { return (true, false) }
            let copies = state.follower.copies
            let covered = frontier.covers(replicas: replicas) { copies[$0]?.through }
            state.frontiers[key] = frontier
            return (covered, covered)
        }
        if newly {
            logger.info(
                "this node's copies reach what the replicas held when they granted its term: it decides on orders none of them held without asking",
                metadata: ["group": "\(key)", "term": "\(term)"])
        }
        return covered
    }

    /// After gathering in a new term: every event of the order this node
    /// holds is put on a majority of the list before the node answers from
    /// it (Raft's new leader commits what its log holds the same way). An
    /// event here that fewer hold may be a write whose acknowledgement never
    /// came (this node's, from a life or a transactor that is gone, or
    /// another leader's it copied): answered from or built on, it could be
    /// missing from the majority a later leader gathers from, which would
    /// then decide against what a client was told. The replicas that
    /// granted the term and lack such events get copies (`StoreRequest`);
    /// if still fewer than a majority hold one, nothing is answered.
    private func commitHeld(_ orderID: ClientID, list: [String], held: [(id: String, address: String, events: Set<String>)]) async throws {
        let majority = list.count / 2 + 1
        guard majority > 1 else { return }
        let mine = try await log.events(orderID: orderID.rawValue, afterVersion: 0)
        var holders = Dictionary(uniqueKeysWithValues: mine.map { ($0.eventID, 1) })
        for replica in held {
            for event in mine where replica.events.contains(event.eventID) { holders[event.eventID, default: 1] += 1 }
        }
        let short = mine.filter { holders[$0.eventID, default: 1] < majority }
        guard !short.isEmpty else { return }
        let (network, timeout) = (self.network, config.gatherTimeout)
        await withTaskGroup(of: [String]?.self) { group in
            for replica in held {
                let missing = short.filter { !replica.events.contains($0.eventID) && $0.origin != replica.id }
                guard !missing.isEmpty else { continue }
                group.addTask {
                    guard case .store(let reply)? = try? await network.call(.store(StoreRequest(events: missing)), to: replica.address, timeout: timeout),
                        reply.refusal == nil
                    else { return nil }
                    return missing.map(\.eventID)
                }
            }
            for await stored in group {
                for id in stored ?? [] { holders[id, default: 1] += 1 }
            }
        }
        let stillShort = short.filter { holders[$0.eventID, default: 1] < majority }
        if !stillShort.isEmpty {
            throw EngineError.unavailable(
                "order \(orderID): \(stillShort.count) of its events are on fewer than \(majority) of its replicas and could not be copied to enough of them; retry")
        }
        logger.info("put an order's events on a majority of its replicas", metadata: ["order": "\(orderID)", "events": "\(short.count)"])
    }

    /// A leader's copies of an order's events (`StoreRequest`): stored as
    /// they are, durably, before the answer. This node's own events are
    /// left out (its own log holds them, or recovery brings them back).
    public func store(_ events: [EventRecord]) async -> StoreReply {
        let own = log.origin
        let copies = events.filter { $0.origin != own }
        do {
            let stored = try await log.replicate(ReplicatedBatch(origin: "", events: copies, throughOffset: nil, deadlines: timers(copies)))
            if stored > 0, let hook = copiedHook.withLock({ $0 }) { await hook.call(Self.counts(copies)) }
            return StoreReply(stored: events.count)
        } catch {
            return StoreReply(stored: 0, refusal: "cannot store: \(error)")
        }
    }

    /// Follows every reachable peer's log until shutdown.
    public func run() async throws {
        var loops: [String: Task<Void, Never>] = [:]
        var backfill: (ring: Set<String>, task: Task<Void, Never>, startedMs: Int64)?
        var toldView: (view: VouchView, peers: Set<String>)?
        /// Released origins whose logs were read from the peers' copies.
        var repaired: [String: Task<Void, Never>] = [:]
        var recovery: Task<Void, Never>?
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let nowMs = clock.monotonicMs
            if let directory, directory.joined {
                if recovery == nil { recovery = spawner.spawn { await self.recover() } }
                let ring = directory.ringMembers
                let done = state.withLock { $0.follower.backfilledRing }
                if ring != backfill?.ring {
                    backfill?.task.cancel()
                    // Back on a ring this node backfilled before, after
                    // another: what others wrote under the ring in between
                    // may not be here (found by seed 211, `--nodes 5`: a
                    // node left and came back while a partition nobody had
                    // detected cut two others off; a replica that never
                    // finished the backfill of the ring without it took the
                    // ring with it as held, granted its term, and both sides
                    // acknowledged writes of one order). Read again first.
                    if backfill != nil, done == ring {
                        state.withLock { $0.follower.backfillStale = true }
                    }
                    // While every order lives on every node, this one among
                    // them, the tail loops left nothing out: only what they
                    // have not copied yet is read, past each log's position
                    // (a write the node that left and one other acknowledged
                    // may not be here yet, and a list of the new ring must
                    // hold it before this node grants: found by the
                    // simulator's upgrade fault, seeds 19 and 123, where a
                    // leader of the shrunk ring answered an acknowledged
                    // order as absent). The first ring of a process is
                    // always backfilled in full (the ring may have changed
                    // while it was down).
                    let factor = directory.replicationFactor
                    if let previous = backfill?.ring, done == previous, previous.contains(directory.nodeID),
                        previous.count <= factor && ring.count <= factor
                    {
                        backfill = (ring, spawner.spawn { await self.backfill(ring, pastPositions: true) }, nowMs)
                    } else {
                        backfill = (ring, spawner.spawn { await self.backfill(ring) }, nowMs)
                    }
                } else if done != ring || state.withLock({ $0.follower.backfillStale }), let started = backfill?.startedMs, nowMs - started >= config.backfillRetryDelay.milliseconds,
                    state.withLock({ $0.backfillFinished })
                {
                    // The last try could not read every log: again.
                    backfill = (ring, spawner.spawn { await self.backfill(ring) }, nowMs)
                }
                // A member gone for good (its log failed, it does not come
                // back) leaves its log where each peer copied it: read it
                // from the live peers' copies, so every replica of its orders
                // gets what any of them holds.
                let released = directory.released
                for origin in released where repaired[origin] == nil && origin != directory.nodeID {
                    repaired[origin] = spawner.spawn { await self.repair(origin) }
                }
                for (origin, task) in repaired where !released.contains(origin) {
                    task.cancel()
                    repaired[origin] = nil
                }
            }
            let peers = directory?.reachablePeers() ?? [:]
            for (id, task) in loops where peers[id] == nil {
                task.cancel()
                loops[id] = nil
                lostFollower(id)
            }
            for id in peers.keys where loops[id] == nil {
                loops[id] = spawner.spawn { await self.follow(id) }
            }
            // The origins learn of a change in what this node vouches for
            // now, not with the next fetch, which may wait at the origin.
            if config.partitionMode == .consistent, let directory {
                // The sequence moves with every change: compare without it.
                let whole = view(for: directory.nodeID).map { VouchView(ring: $0.ring, eligible: $0.eligible, promises: state.withLock { $0.promises }) }
                if let whole, toldView?.view != whole || toldView?.peers != Set(peers.keys) {
                    for (id, address) in peers where toldView?.view != whole || toldView?.peers.contains(id) == false {
                        guard let told = view(for: id) else { continue }
                        let message = PeerMessage.vouch(follower: directory.nodeID, told)
                        let network = self.network
                        spawner.spawn { await network.send(message, to: address, timeout: .seconds(1)) }
                    }
                    toldView = (whole, Set(peers.keys))
                }
            }
            try? await clock.sleep(for: config.followInterval)
        }
        for task in loops.values { task.cancel() }
        for task in repaired.values { task.cancel() }
        recovery?.cancel()
        backfill?.task.cancel()
        // Wake fetches waiting for a commit that will not come.
        let waiting = state.withLock { state in
            defer { state.commitWaiters = [:] }
            return state.commitWaiters.values.map(\.continuation)
        }
        for continuation in waiting { continuation.resume() }
    }

    private func lostFollower(_ id: String) {
        let released = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.tracker.followerLost(id, relaxAll: config.acks == .all).compactMap { state.ackWaiters.removeValue(forKey: $0) }
        }
        for continuation in released { continuation.resume() }
    }

    /// Copies `origin`'s log from where this file left off, batch by batch.
    private func follow(_ origin: String) async {
        var logger = self.logger
        logger[metadataKey: "origin"] = "\(origin)"
        var position: Int64
        do {
            position = try await log.replicaPositions()[origin] ?? 0
        } catch {
            logger.error("cannot read the replica position", metadata: ["error": "\(error)"])
            return
        }
        let selfID = log.origin
        let fetchTimeout = Duration.milliseconds(Int(config.fetchWaitMs)) + .seconds(2)
        var lastFailure: String?
        // The id of the event of `origin`'s log at `position`, when known,
        // and whether this copy kept it: the origin checks its log holds the
        // same one there (or, for one passed, at least no other).
        var atPosition: (offset: Int64, id: String, checksum: UInt32, held: Bool)?
        if position > 0, let held = try? await log.scan(origin: origin, fromOffset: position, limit: 1).first, held.offset == position {
            atPosition = (position, held.eventID, held.checksum, true)
        }
        while !Task.isCancelled {
            // The loop ends only when `run` cancels it (the peer left the
            // view): returning on its own while the peer flapped dead and
            // alive between two of `run`'s looks would leave the log
            // uncopied for good, since `run` starts no second loop.
            guard let address = directory?.reachablePeers()[origin] else {
                try? await clock.sleep(for: config.retryDelay)
                continue
            }
            do {
                let reply = try await network.fetch(
                    address, follower: selfID,
                    .log(
                        origin: origin, fromOffset: position + 1, eventsMax: config.fetchEventsMax, waitMs: config.fetchWaitMs,
                        previousEventID: atPosition?.offset == position ? atPosition?.id : nil,
                        previousChecksum: atPosition?.offset == position ? atPosition?.checksum ?? 0 : 0,
                        previousHeld: atPosition?.held ?? true),
                    view: config.partitionMode == .consistent ? view(for: origin) : nil,
                    timeout: fetchTimeout)
                if let refusal = reply.refusal {
                    logger.warning("the origin refused a fetch", metadata: ["reason": "\(refusal)"])
                    try await clock.sleep(for: .seconds(1))
                    continue
                }
                switch FollowerState.verdict(origin: origin, position: position, events: reply.events, throughOffset: reply.throughOffset) {
                case .reject(let reason):
                    logger.error("\(reason); dropped")
                    try await clock.sleep(for: config.retryDelay)
                    continue
                case .unchanged:
                    break
                case .store(let through):
                    // Placement: only the orders whose preference list holds
                    // this node; the position moves past the others.
                    let kept = reply.events.filter(placement())
                    let copied = try await log.replicate(
                        ReplicatedBatch(origin: origin, events: kept, throughOffset: through, deadlines: timers(kept)))
                    copiedCounter.increment(by: copied)
                    if !reply.events.isEmpty { copiedBatches.increment() }
                    if copied > 0, let hook = copiedHook.withLock({ $0 }) {
                        await hook.call(Self.counts(kept))
                    }
                    let now = clock.wallMs
                    for event in reply.events { lagTimer.recordMilliseconds(max(0, now - event.recordedAt)) }
                    position = through
                    if let last = reply.events.last, last.offset == through {
                        atPosition = (through, last.eventID, last.checksum, kept.last?.offset == through)
                    }
                }
                let now = clock.wallMs
                state.withLock {
                    $0.follower.noteCopy(origin: origin, through: position, holderLastOffset: reply.holderLastOffset, nowMs: now)
                }
            } catch is CancellationError {
                return
            } catch {
                // A failure that repeats is logged once, not every retry.
                let description = "\(error)"
                if description != lastFailure {
                    logger.warning("copying failed; retrying", metadata: ["error": "\(description)"])
                    lastFailure = description
                }
                try? await clock.sleep(for: config.retryDelay)
                continue
            }
            lastFailure = nil
        }
    }

    private static let heldKey = Array("held_until_ms".utf8)

    /// The timers the copies of held payments carry, per order (the
    /// earliest): a replica that leads the order later fires them, so a held
    /// payment whose order never comes is refunded after a failover too.
    static func heldUntil(_ events: [EventRecord]) -> [String: Int64] {
        var deadlines: [String: Int64] = [:]
        for event in events where event.type == "PaymentReceived" && event.payload.utf8.contains(subsequence: Self.heldKey) {
            guard case .paymentReceived(_, _, let heldUntil?)? = try? OrderEvent.decode(typeName: event.type, payload: event.payload) else { continue }
            deadlines[event.orderID] = min(deadlines[event.orderID] ?? .max, heldUntil)
        }
        return deadlines
    }

    /// The timers a batch of copies sets here: those of its held payments
    /// and, in available mode, a review due now of each order the copies
    /// may have merged with another side's stream: one written by a node
    /// other than its owner (a stand-in leader's), or one this node leads
    /// (another node wrote it). Whichever replica leads the order when the
    /// timer fires repairs the merged state (a cancelled order's money sent
    /// back, conflicts recorded) without waiting for a client to touch it;
    /// the others keep the timer until the repair reaches them.
    func timers(_ events: [EventRecord]) -> [String: Int64] {
        var deadlines = Self.heldUntil(events)
        guard config.partitionMode == .available, let directory else { return deadlines }
        for event in events where deadlines[event.orderID] != 0 {
            guard let orderID = ClientID(event.orderID) else { continue }
            if directory.preferenceList(for: orderID).first != event.origin || directory.leads(orderID) {
                deadlines[event.orderID] = 0
            }
        }
        return deadlines
    }

    private static func counts(_ events: [EventRecord]) -> [String: Int] {
        events.reduce(into: [:]) { $0[$1.orderID, default: 0] += 1 }
    }

    /// Placement: this node keeps an order's events when the order's
    /// preference list holds it on the current ring, or on the ring it last
    /// backfilled. Until the backfill of a new ring completes it vouches on
    /// the old one (`view(for:)`), so it keeps what the old one gives it:
    /// an origin never counts a copy this node dropped.
    ///
    /// A node off its own ring (it is leaving: SIGTERM) keeps everything:
    /// it may come back on this disk (an upgrade restarts every node that
    /// way), and what it dropped and moved past would then be missing
    /// (found by the simulator's upgrade fault, seed 228: a node that took
    /// 10 s to stop, its peers down, came back without the orders written
    /// meanwhile, and its replicas disagreed for good).
    func placement() -> @Sendable (EventRecord) -> Bool {
        guard let directory else { return { _ in true } }
        let selfID = directory.nodeID
        guard directory.ringMembers.contains(selfID) else { return { _ in true } }
        let factor = directory.replicationFactor
        let backfilled = state.withLock { $0.follower.backfilledRing }
        let previous: HashRing? = backfilled.flatMap { ring in
            ring == directory.ringMembers ? nil : HashRing(nodes: Dictionary(uniqueKeysWithValues: ring.map { ($0, 1) }))
        }
        return { record in
            guard let orderID = ClientID(record.orderID) else { return true }
            if directory.preferenceList(for: orderID).contains(selfID) { return true }
            return previous?.preferenceList(for: record.orderID, count: factor).contains(selfID) ?? false
        }
    }

    /// After the ring changed: copies, from every log, the events of the
    /// orders this node gained (the tail loops kept only the orders it held
    /// under the ring of their time). A log whose origin is reachable is read
    /// from the origin; one whose origin is away (dead, or left the ring) is
    /// read from every reachable peer's copy, since each holds its own
    /// orders only. Copies are INSERT OR IGNORE, so what is here already
    /// costs a read and nothing more; positions do not move.
    /// With `pastPositions`, each log is read from this node's position in
    /// it only (what the tail loops have not copied yet).
    /// With `afterDataLoss` (this node's own log went back: a replaced
    /// disk, a restore), an origin that is recovering must be read once it
    /// has recovered: its copies are not enough.
    @discardableResult
    func backfill(_ ring: Set<String>, pastPositions: Bool = false, afterDataLoss: Bool = false) async -> Bool {
        guard let directory else { return false }
        state.withLock { $0.backfillFinished = false }
        defer { state.withLock { $0.backfillFinished = true } }
        let started = clock.monotonicMs
        var copied = 0
        var complete = true
        var origins = ring
        let positions = (try? await log.replicaPositions()) ?? [:]
        origins.formUnion(positions.keys)
        // The logs of members that left hold their orders for good, and a
        // log this node never copied (an empty disk) names none of them.
        // (Found by seed 63 on a debug build of the handover change: a
        // replaced disk backfilled a ring of two without the log of a node
        // that had left, and led one of its orders, acknowledged, as absent.)
        origins.formUnion(directory.departed)
        origins.remove(directory.nodeID)
        // A departed member's log read whole for this ring before is not
        // read again (see `DepartedLogRead`).
        let readBefore = (try? await log.departedLogsRead()) ?? []
        var readNow: [DepartedLogRead] = []
        for origin in origins.sorted() {
            let departure = directory.departed.contains(origin) ? directory.departedIncarnation(of: origin) : nil
            let record = departure.map { DepartedLogRead(origin: origin, incarnation: $0, ring: ring) }
            if let record, readBefore.contains(record) {
                logger.info("not read again: the log of a member that left, read whole for this ring", metadata: ["origin": "\(origin)"])
                continue
            }
            guard let (count, whole) = await backfillLog(origin, pastPositions ? positions[origin] ?? 0 : 0, afterDataLoss: afterDataLoss)
            else { return false }
            copied += count
            if !whole {
                complete = false
            } else if let record, !pastPositions {
                readNow.append(record)
            }
        }
        guard !Task.isCancelled, complete, directory.ringMembers == ring else { return false }
        if !readNow.isEmpty {
            do {
                _ = try await log.append(AppendRequest(events: [], departedLogsRead: readNow))
            } catch {
                // Read again next time.
                logger.warning("recording the departed members' logs read failed", metadata: ["error": "\(error)"])
            }
        }
        state.withLock {
            $0.follower.backfilledRing = ring
            $0.follower.backfillStale = false
        }
        backfillObserver.withLock { $0 }?()
        logger.info("backfilled the orders of the new ring", metadata: [
            "ring": "\(ring.sorted())", "events": "\(copied)", "ms": "\(clock.monotonicMs - started)",
        ])
        return true
    }

    /// Copies, for `backfill`, the events of `origin`'s log past `start`
    /// that this node's orders lack: from the origin when it answers, else
    /// from every other member's copy. Returns what it copied and whether it
    /// read the log whole (false: `run` tries again); nil when cancelled.
    private func backfillLog(_ origin: String, _ start: Int64, afterDataLoss: Bool) async -> (copied: Int, whole: Bool)? {
        guard let directory else { return nil }
        var copied = 0
        var whole = true
        let reachable = directory.reachablePeers()
        // Members that left and still beat are handing over (see
        // `ClusterMembership.handOver`): one may hold the only other
        // copy of a write, so it is read while it answers, never
        // waited for, unless its log went back (below).
        let departed = directory.departedPeers()
        if let address = reachable[origin] ?? departed[origin] {
            do {
                copied += try await backfill(origin, from: origin, at: address, after: start)
                return (copied, whole)
            } catch is CancellationError {
                return nil
            } catch let recovering as OriginRecovering {
                // Its log may lack what it wrote (a replaced disk, a
                // restore) while a peer's copy holds it: read the copies,
                // as when the origin is away. (Found by seed 1844,
                // `--nodes 5`: a node read a restored origin's log from
                // the origin, took it as whole, and led an order on the
                // new ring as absent that the origin and a node now off
                // its list had acknowledged.)
                // But when this node lost its own data, the disk of an
                // origin that restarted may hold what no copy does (the
                // other holder was this node): that backfill is not
                // done until the origin has recovered and its log is
                // read. (Found by seed 5, `--nodes 4 --faults
                // churn,upgrade,crash,disk,restore,partition,messages`,
                // a release build of 496a76b: a replaced disk took its
                // ring as backfilled from the copies while the origin,
                // restarted after a power cut, was recovering; the
                // origin's log was then put back from a backup, and
                // acknowledged payments and a shipment were lost.) When
                // another holder lost its data, it does not serve its
                // copies until it has recovered (`serveCopy`). An
                // origin that lost its own data too takes it back from
                // the copies: neither waits for the other.
                if afterDataLoss && recovering.holdsOwnLog { whole = false }
            } catch _ where reachable[origin] == nil {
                // A member that left and stopped meanwhile: its copies.
            } catch {
                logger.warning("backfill failed", metadata: ["origin": "\(origin)", "holder": "\(origin)", "error": "\(error)"])
                whole = false
                if Task.isCancelled { return nil }
                return (copied, whole)
            }
        }
        // After this node lost its data, an origin that is away (not one
        // that left) may hold a write whose other copy was here: its log
        // is read from it once it is back, not from the copies. (Found by
        // seed 79342, `--customers-per-second 40 --faults
        // restore,upgrade,crash,partition,disk`, a release build between
        // 633fa07 and its successor: a log restored from a backup read
        // the log of an origin cut off by a partition from the third
        // node's copies, which lacked writes only the origin and this
        // node had held; the origin's disk was then replaced, and
        // acknowledged payments and shipments were gone.)
        if afterDataLoss && reachable[origin] == nil && departed[origin] == nil && !directory.departed.contains(origin) {
            whole = false
        }
        // Without the origin, each peer holds its own orders of the log
        // only: every other member of the ring must be read. A member out
        // of reach leaves the backfill incomplete (`run` tries again), so
        // this node does not vouch on the new ring meanwhile.
        if !directory.ringMembers.subtracting([directory.nodeID, origin]).isSubset(of: Set(reachable.keys)) {
            whole = false
        }
        let holders = departed.merging(reachable) { _, live in live }.filter { $0.key != origin }
        for (holder, address) in holders.sorted(by: { $0.key < $1.key }) {
            do {
                copied += try await backfill(origin, from: holder, at: address, after: start)
            } catch is CancellationError {
                return nil
            } catch is HolderLostData where afterDataLoss {
                // Both lost their data: each takes its log back from the
                // others' copies, and neither waits for the other.
            } catch let lost as HolderLostData {
                // Its copies may lack a write only the origin's disk holds
                // now: not done until it has recovered, though it left
                // (it still beats, so it may hold the only other copy).
                logger.warning("backfill failed", metadata: ["origin": "\(origin)", "holder": "\(holder)", "error": "\(lost)"])
                whole = false
            } catch _ where reachable[holder] == nil {
                // A member that left is read while it answers, never waited for.
            } catch {
                // Not done: `run` tries again; gathering covers an
                // order's leader meanwhile.
                logger.warning("backfill failed", metadata: ["origin": "\(origin)", "holder": "\(holder)", "error": "\(error)"])
                whole = false
                if Task.isCancelled { return nil }
            }
        }
        return (copied, whole)
    }

    /// While an origin is released (gone, for good perhaps), reads its log
    /// past this node's copy from every live peer's copy, every
    /// `repairInterval` (INSERT OR IGNORE: what is here costs a read and
    /// nothing more; the position does not move, since each copy has gaps).
    private func repair(_ origin: String) async {
        guard let directory else { return }
        while !Task.isCancelled {
            let start = ((try? await log.replicaPositions()) ?? [:])[origin] ?? 0
            var copied = 0
            for (holder, address) in directory.reachablePeers().sorted(by: { $0.key < $1.key }) where holder != origin {
                do {
                    copied += try await backfill(origin, from: holder, at: address, after: start, timeout: .seconds(2))
                } catch is CancellationError {
                    return
                } catch {
                    logger.warning("reading a released member's log from a peer failed", metadata: [
                        "origin": "\(origin)", "holder": "\(holder)", "error": "\(error)",
                    ])
                }
            }
            if copied > 0 {
                logger.info("read a released member's log from the peers' copies", metadata: ["origin": "\(origin)", "events": "\(copied)"])
            }
            try? await clock.sleep(for: config.repairInterval)
        }
    }

    private func backfill(
        _ origin: String, from holder: String, at address: String, after start: Int64 = 0, timeout: Duration = .seconds(3)
    ) async throws -> Int {
        var copied = 0
        try await readLog(origin, from: holder, at: address, after: start, timeout: timeout) { reply in
            let kept = reply.events.filter(placement())
            guard !kept.isEmpty else { return }
            let stored = try await log.replicate(ReplicatedBatch(origin: origin, events: kept, throughOffset: nil, deadlines: timers(kept)))
            copied += stored
            if stored > 0, let hook = copiedHook.withLock({ $0 }) { await hook.call(Self.counts(kept)) }
        }
        return copied
    }

    /// Reads `origin`'s log as `holder` holds it, batch by batch from
    /// `start`, through the end the holder reported in its first reply;
    /// `batch` gets each reply (its events checked to be of that log and
    /// past the position).
    func readLog(
        _ origin: String, from holder: String, at address: String, after start: Int64, timeout: Duration,
        _ batch: (FetchReply) async throws -> Void
    ) async throws {
        var position: Int64 = start
        var target: Int64?
        while !Task.isCancelled {
            let reply = try await network.fetch(
                address, follower: log.origin, .log(origin: origin, fromOffset: position + 1, eventsMax: config.fetchEventsMax, waitMs: 0),
                timeout: timeout)
            if let refusal = reply.refusal {
                if holder == origin, refusal.hasPrefix(Self.recoveringPrefix) {
                    throw OriginRecovering(holdsOwnLog: refusal.hasPrefix(Self.recoveringWithOwnLogPrefix))
                }
                if holder != origin, refusal.hasPrefix(Self.copiesWentBackPrefix) { throw HolderLostData(reason: refusal) }
                throw EngineError.unavailable("\(holder) refused: \(refusal)")
            }
            if target == nil { target = reply.holderLastOffset }
            guard reply.events.allSatisfy({ $0.origin == origin && $0.offset > position }) else {
                throw EngineError.unavailable("\(holder) sent events of the wrong log or position")
            }
            try await batch(reply)
            guard let next = BackfillProgress.next(
                position: position, throughOffset: reply.throughOffset, lastEventOffset: reply.events.last?.offset,
                eventCount: reply.events.count, target: target ?? 0)
            else { break }
            position = next
        }
        try Task.checkCancellation()
    }

    /// How every reason of a node that is still recovering its log begins.
    static let recoveringPrefix = "this node is recovering its log"

    /// How the reason of a recovering node whose disk still holds its own
    /// log begins (it restarted; its disk was not replaced or restored).
    static let recoveringWithOwnLogPrefix = "this node is recovering its log, which its disk still holds"

    /// How the refusal of a holder whose log went back begins: it serves
    /// no copies of other logs until it has recovered (see `serveCopy`).
    static let copiesWentBackPrefix = "this node's log went back and it is recovering: its copies may lack what it held"

    /// A holder refused to serve its copies: its log went back.
    struct HolderLostData: Error, CustomStringConvertible {
        var reason: String
        var description: String { reason }
    }

    /// The origin refused to serve its own log: it is recovering it;
    /// `holdsOwnLog`: its disk still holds it.
    struct OriginRecovering: Error {
        var holdsOwnLog = false
    }

    // MARK: Visibility

    public struct FollowerStatus: Sendable, Equatable {
        public var follower: String
        public var position: Int64
        public var lagEvents: Int64
        /// Age of the oldest event the follower does not hold yet.
        public var lagMs: Int64
    }

    /// Per follower of this node's log: its position and lag.
    public func followers() async -> [FollowerStatus] {
        let positions = state.withLock { $0.tracker.positions }
        let committed = log.committedOffset
        let now = clock.wallMs
        var statuses: [FollowerStatus] = []
        for (follower, position) in positions.sorted(by: { $0.key < $1.key }) {
            var lagMs: Int64 = 0
            if position < committed, let oldest = try? await log.scan(origin: log.origin, fromOffset: position + 1, limit: 1).first {
                lagMs = max(0, now - oldest.recordedAt)
            }
            statuses.append(FollowerStatus(follower: follower, position: position, lagEvents: max(0, committed - position), lagMs: lagMs))
        }
        return statuses
    }

    /// Per log this node copies: how far, and how far behind its holder.
    public var copies: [String: CopyStatus] { state.withLock { $0.follower.copies } }

    public var ownLastOffset: Int64 { log.committedOffset }

    /// The ring the log recorded in this node's last life (`ring_members`,
    /// the members that had not left): while the ring is still that one,
    /// its copies were kept under it, and it may grant before its first
    /// backfill of this life is done.
    public func startedOn(ring: Set<String>) {
        state.withLock { $0.recordedRing = ring }
    }

    /// `body` is called each time this node has backfilled its ring. Set
    /// before the node runs.
    public func onBackfilled(_ body: @escaping @Sendable () -> Void) {
        backfillObserver.withLock { $0 = body }
    }

    /// Whether this node holds every order its ring gives it: it backfilled
    /// the ring, or (before the first backfill of this life) the ring is the
    /// one it kept its copies under when it last ran.
    public func holdsItsRing(_ ring: Set<String>) -> Bool {
        state.withLock { state in
            if state.follower.backfilledRing != nil { return state.follower.holds(ring) }
            return state.recordedRing == nil || state.recordedRing == ring
        }
    }

    /// True once this node holds every event of its orders on this ring.
    public func backfilled(ring: Set<String>) -> Bool {
        state.withLock { $0.follower.holds(ring) }
    }
}

extension String.UTF8View {
    /// Whether `needle` occurs in these bytes (a plain scan: payloads are
    /// short, and Foundation's `contains` costs more than the search).
    func contains(subsequence needle: [UInt8]) -> Bool {
        if let found = withContiguousStorageIfAvailable({ Self.find(needle, in: $0) }) { return found }
        return Array(self).withUnsafeBufferPointer { Self.find(needle, in: $0) }
    }

    private static func find(_ needle: [UInt8], in bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let first = needle.first else { return true }
        guard bytes.count >= needle.count else { return false }
        var index = 0
        while index <= bytes.count - needle.count {
            if bytes[index] == first && bytes[index..<(index + needle.count)].elementsEqual(needle) { return true }
            index += 1
        }
        return false
    }
}
