import LogStorage
import Logging
import NodeRuntime
import OrderDomain

/// What a command did: the decision's outcome and the state after it.
public struct CommandResult: Sendable {
    public let outcome: Outcome
    public let state: OrderState
}

/// One order's single point of decision. Commands run one at a time, in
/// arrival order: decide on the current state, append the events, and only
/// then move the state forward, so the state never runs ahead of the log.
actor Transactor {
    let orderID: ClientID
    private let log: any LogStore
    private let catalog: Catalog
    private let config: EngineConfig
    private let clock: any NodeClock
    private let baseLogger: Logger
    /// With the order id: built only when something is logged (rarely),
    /// not at every activation.
    private var logger: Logger {
        var logger = baseLogger
        logger[metadataKey: "order"] = "\(orderID)"
        return logger
    }
    private let replication: (any ReplicationCoordinator)?

    private var state: OrderState
    private var loaded = false
    /// Grows with every `invalidate`: a load that awaited the log while
    /// events arrived does not count as loaded.
    private var generation: UInt64 = 0
    /// The view under which the state was loaded (see `ReplicaDirectory.epoch`).
    private var loadedEpoch: UInt64 = 0
    /// The leadership term the state was gathered and is decided in
    /// (consistent mode): every event this transactor appends carries it.
    private var term: Term?
    /// Newest offset of this node's log holding an event of the order: the
    /// position replicas must hold before an answer about it goes out.
    private var ownOffset: Int64 = 0
    private var checkpointVersion: Int64 = 0
    /// The newest own offset of a write whose acknowledgement did not come
    /// (it timed out, or the node lost the lead meanwhile): it stays in this
    /// log and in the state, so an answer built on that state waits for it
    /// to reach the replicas first.
    private var unacknowledged: Int64?
    /// The own offset of an event written again in this node's term
    /// (`anchorHead`) that a majority has not confirmed yet: a reload folds
    /// it as the order's last event, so the next answer waits for it.
    private var unanchored: Int64?
    /// Events of the order at or below `state.version` the log held when the
    /// state was loaded, plus those appended since (nil: unknown, from a
    /// checkpoint written without the count).
    private var eventsHeld: Int64? = 0
    /// The timer the `deadlines` table holds for this order, as far as known.
    private var storedDeadline: Int64?
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(
        orderID: ClientID, log: any LogStore, catalog: Catalog, config: EngineConfig, replication: (any ReplicationCoordinator)?,
        clock: any NodeClock, logger: Logger
    ) {
        self.orderID = orderID
        self.replication = replication
        self.log = log
        self.catalog = catalog
        self.config = config
        self.clock = clock
        self.state = OrderState(orderID: orderID)
        self.baseLogger = logger
    }

    /// Runs one command. The result is returned once its events are durable
    /// here and on the replicas `--acks` asks for. A repeat of a command
    /// waits for the replicas too: its first attempt may have failed there.
    func handle(_ command: OrderCommand) async throws -> Result<CommandResult, DomainError> {
        await acquire()
        defer { release() }
        try replication?.admit(orderID)
        try await loadIfNeeded()
        try await repairMerged()
        // The view may have moved while the state loaded: decide only as
        // the leader, now (no suspension from here to the append).
        try replication?.checkLeadership(orderID)
        if command == .expireHeldPayments {
            // The timer row fired, so it exists whatever memory says: make the
            // append below rewrite or clear it, or it would fire forever.
            storedDeadline = -1
        }
        let context = DecideContext(nowMs: clock.wallMs, catalog: catalog, holdTimeoutMs: config.holdTimeoutMs)
        switch OrderDecider.decide(command, state: state, context: context) {
        case .failure(let error):
            // A refusal writes nothing, but it is an answer about the
            // order's state, like a read: given only once a majority of the
            // replicas confirm this node still holds its term. (Found by
            // seed 5503: a leader cut off by a partition refused a shipment
            // as "not paid" after another node had taken the payment.)
            try await confirmAsRead()
            return .failure(error)
        case .success(let decision):
            // The same for a repeat that writes nothing.
            if decision.events.isEmpty && command != .expireHeldPayments { try await confirmAsRead() }
            let next = folded(decision.events)
            try await persist(decision.events, next: next)
            state = next
            if !decision.events.isEmpty { unacknowledged = ownOffset }
            try await replication?.awaitReplicas(orderID, through: ownOffset, term: term)
            unacknowledged = nil
            // A node that took the order over meanwhile may have decided
            // without this write: only a node that still leads, in its term,
            // acknowledges.
            do {
                try replication?.confirmLeadership(orderID, term: term)
            } catch {
                loaded = false
                throw error
            }
            return .success(CommandResult(outcome: decision.outcome, state: next))
        }
    }

    /// Before an answer about the order's state that writes nothing (a
    /// read, a refusal, a repeat): a write of this transactor whose
    /// acknowledgement did not come is on the replicas `--acks` asks for by
    /// now (it is still in memory and in this log, and another leader may
    /// decide without it; found by seed 7843: a cancel refused as "shipped"
    /// after a shipment that was never acknowledged and then superseded),
    /// and, as a read does, a majority still grants this node its term.
    private func confirmAsRead() async throws {
        do {
            if let pending = unacknowledged {
                try await replication?.awaitReplicas(orderID, through: pending, term: term)
                unacknowledged = nil
            }
            try await anchorHead()
            try await replication?.confirmRead(orderID, term: term)
        } catch {
            loaded = false
            throw error
        }
    }

    /// Before an answer that writes nothing, from a state whose last event
    /// another term wrote: that event written again, the same fact at the
    /// same version, in this node's term, on a majority of the replicas.
    /// Counting the replicas that hold an older term's event does not make
    /// it stay (as in Raft, a leader commits an older term's entry only
    /// through one of its own): a leader of a term between that one
    /// and this node's, deposed and cut off, may still write that version,
    /// and every fold keeps the newer-numbered of two events at a version
    /// that no newer term's event goes on from (`OrderMerge.superseded`).
    /// Written in this term, the event stands over both. (Found by seed
    /// 98425, `--customers-per-second 60 --faults restore,upgrade,crash,
    /// partition,disk,oneway,bridge`, a release build of 835ec24: term 28's
    /// leader answered a repeated place from a term-6 placement; a leader
    /// of term 23, cut off, then stored a held payment at version 1, and
    /// every node read the acknowledged order as absent.)
    private func anchorHead() async throws {
        if let pending = unanchored {
            try await replication?.awaitMajority(orderID, through: pending, term: term)
            unanchored = nil
        }
        guard let term, state.version > 0, state.headTerm != term else { return }
        // The whole stream: the versions below decide which event the fold
        // keeps at the last two.
        let stream = try await log.events(orderID: orderID.rawValue, afterVersion: 0).map { try $0.streamEvent() }
        let dropped = OrderMerge.superseded(base: OrderState(orderID: orderID), stream)
        let kept = OrderMerge.canonical(stream).filter { !dropped.contains($0.eventID) }
        let atHead = kept.filter { $0.version == state.version }
        guard atHead.count == 1, let head = atHead.first, state.headTerm == nil || head.term == state.headTerm else {
            logger.warning("the order's last event could not be written again in this term", metadata: [
                "version": "\(state.version)", "events_there": "\(atHead.count)",
            ])
            return
        }
        let before = kept.last { $0.version == state.version - 1 }?.term
        let after = before == term ? nil : before
        try replication?.checkLeadership(orderID)
        let request = AppendRequest(
            events: [NewEvent(orderID: orderID.rawValue, version: state.version, type: head.event.typeName, payload: head.event.payloadJSON(after: after), term: term.number)],
            check: replication?.commitCheck(orderID, term: term))
        try await append(request)
        eventsHeld = eventsHeld.map { $0 + 1 }
        state.headTerm = term
        state.newestTerm = max(state.newestTerm, term)
        // A majority, not `--acks`: the event only restates one the
        // replicas hold, and under `all` a replica that did not grant this
        // term (a majority did) would hold every answer up.
        unanchored = ownOffset
        try await replication?.awaitMajority(orderID, through: ownOffset, term: term)
        unanchored = nil
    }

    /// The current state, after every command that arrived before this call.
    func current() async throws -> OrderState {
        await acquire()
        defer { release() }
        try await loadIfNeeded()
        if replication != nil {
            // A read is answered even where writes are refused.
            try? await repairMerged()
        }
        try await confirmAsRead()
        return state
    }

    /// A stream merged from two sides of a partition can break what one
    /// leader keeps true (a payment held for an order the other side
    /// placed, money kept by a cancelled order, more paid than the total)
    /// or hold a conflict. The leader appends the repair `OrderMerge`
    /// decides before anything else; a linear stream needs none.
    private func repairMerged() async throws {
        guard replication != nil else { return }
        let repair = OrderMerge.reconcile(state)
        guard !repair.isEmpty else { return }
        try replication?.admit(orderID)
        try replication?.checkLeadership(orderID)
        let next = folded(repair)
        try await persist(repair, next: next)
        state = next
        unacknowledged = ownOffset
        try await replication?.awaitReplicas(orderID, through: ownOffset, term: term)
        unacknowledged = nil
        logger.warning("repaired an order merged from two sides of a partition", metadata: [
            "events": "\(repair.count)", "conflicts": "\(next.conflicts.map(\.code))",
        ])
    }

    /// The state after `events`, which this transactor appends in its term:
    /// the state keeps the newest term of its stream (a checkpoint of it
    /// carries it), so an activation under a term numbered lower (another
    /// preference list's, after the ring changed) takes a newer one before
    /// it writes. (Found by seed 99, `--nodes 4 --faults churn,upgrade,
    /// crash,disk,restore,partition,messages`, a release build of 496a76b:
    /// a passivated order's checkpoint had no term; activated on the list
    /// without a node that had left, its leader wrote a shipment in term 15
    /// after payments in term 23, and every log's fold leaves such an event
    /// out as a deposed leader's: the acknowledged shipment was overruled.)
    private func folded(_ events: [OrderEvent]) -> OrderState {
        var next = OrderDecider.fold(state, events)
        if !events.isEmpty {
            if let term { next.newestTerm = max(next.newestTerm, term) }
            next.headTerm = term
        }
        return next
    }

    /// Another node's events of this order were stored here: reload before
    /// the next command.
    func invalidate() {
        loaded = false
        generation &+= 1
    }

    /// Writes a checkpoint if at least `checkpointAfter` events came since
    /// the last one (`EngineConfig.passivationCheckpointEvents` for an idle
    /// order, 1 at a graceful stop). Called once the directory has removed
    /// this transactor, so no command can follow.
    func passivate(checkpointAfter: Int64) async {
        await acquire()
        defer { release() }
        guard loaded, state.version - checkpointVersion >= max(1, checkpointAfter) else { return }
        do {
            _ = try await log.append(AppendRequest(events: [], checkpoint: checkpoint(of: state, eventsHeld: eventsHeld)))
            checkpointVersion = state.version
        } catch {
            // The log still holds every event; the next activation replays them.
            logger.warning("checkpoint on passivation failed", metadata: ["error": "\(error)"])
        }
    }

    private func persist(_ events: [OrderEvent], next: OrderState) async throws {
        let deadline = next.nextHoldDeadlineMs
        let deadlineChange: DeadlineChange? = deadline == storedDeadline ? nil : (deadline.map { .set($0) } ?? .clear)
        guard !events.isEmpty || deadlineChange != nil else { return }
        var version = state.version
        let number = term?.number ?? 0
        // The first event names the term of the one it follows when another
        // term wrote it (OrderMerge.superseded follows the newest term's
        // events down through these).
        var after = term != nil && state.headTerm != term ? state.headTerm : nil
        let records = events.map { event -> NewEvent in
            version += 1
            defer { after = nil }
            return NewEvent(orderID: orderID.rawValue, version: version, type: event.typeName, payload: event.payloadJSON(after: after), term: number)
        }
        let wantsCheckpoint = !events.isEmpty && next.version - checkpointVersion >= config.checkpointEveryEvents
        let held = eventsHeld.map { $0 + Int64(records.count) }
        let request = AppendRequest(
            events: records,
            checkpoint: wantsCheckpoint ? checkpoint(of: next, eventsHeld: held) : nil,
            deadline: deadlineChange.map { (orderID.rawValue, $0) },
            check: events.isEmpty ? nil : replication?.commitCheck(orderID, term: term))
        try await append(request)
        if wantsCheckpoint { checkpointVersion = next.version }
        eventsHeld = held
        storedDeadline = deadline
    }

    /// Appends this transactor's events. Whether a failed commit reached
    /// the disk is unknown: the state is loaded again from the log before
    /// the next command rather than trusted.
    private func append(_ request: AppendRequest) async throws {
        do {
            let stored = try await log.append(request)
            if let last = stored.last { ownOffset = last.offset }
        } catch {
            loaded = false
            throw error
        }
    }

    /// A checkpoint of `state` that the log writes only if it holds exactly
    /// `eventsHeld` events of the order at or below its version: a copy of
    /// another node's event stored since the state was loaded (the copy
    /// hook has not made this transactor reload yet) is never hidden.
    private func checkpoint(of state: OrderState, eventsHeld: Int64?) -> Checkpoint {
        Checkpoint(
            orderID: orderID.rawValue, version: state.version, state: state.snapshotJSON(eventsHeld: eventsHeld),
            coveredEvents: eventsHeld)
    }

    /// Activation: what the other replicas hold that this node lacks, then
    /// the newest checkpoint plus the events after it. State loaded under an
    /// older cluster view is loaded again: another node may have led the
    /// order meanwhile.
    private func loadIfNeeded() async throws {
        if loaded, let replication, replication.epoch != loadedEpoch || !replication.holds(term, for: orderID) { loaded = false }
        var attempts = 0
        while !loaded {
            // Another node's events of this order stored while the load
            // awaited may be missing from it: load again, a few times.
            guard attempts < Self.loadAttemptsMax else {
                throw EngineError.unavailable("order \(orderID) keeps receiving events from other nodes while it loads; retry")
            }
            attempts += 1
            try await load()
        }
    }

    static let loadAttemptsMax = 3

    /// In consistent mode: a term for the order first (a majority of its
    /// replicas granted it), then its events from the replicas that granted
    /// it; when the stream already holds a newer term (another leader's,
    /// or an older ring's), a newer one again.
    private func load() async throws {
        let epoch = replication?.epoch ?? 0
        let generation = self.generation
        var term = try await replication?.term(for: orderID, above: .none)
        var loadedState = OrderState(orderID: orderID)
        var checkpointVersion: Int64 = 0
        var eventsHeld: Int64? = 0
        for _ in 0..<Self.loadAttemptsMax {
            // An order nobody holds anything of (the gather just looked, this
            // node's log included) has nothing to read back.
            let unheld = try await replication?.gather(orderID, term: term) ?? false
            var (checkpoint, records) = unheld ? (nil, []) : try await log.load(orderID: orderID.rawValue)
            if let old = checkpoint, OrderState.eventsHeld(inSnapshot: old.state) == nil {
                // A checkpoint written before the count was kept: fold the
                // whole stream once (the next checkpoint carries the count).
                checkpoint = nil
                records = try await log.events(orderID: orderID.rawValue, afterVersion: 0)
            }
            var base = OrderState(orderID: orderID)
            eventsHeld = Int64(records.count)
            if let checkpoint {
                base = try OrderState.fromSnapshot(checkpoint.state)
                eventsHeld = OrderState.eventsHeld(inSnapshot: checkpoint.state).map { $0 + Int64(records.count) }
            }
            // One event per version in consistent mode once a deposed
            // leader's writes are left out; two sides of a partition may both
            // have written a version in available mode: every event is then
            // folded, in the canonical order all nodes agree on (OrderMerge).
            var stream: [StreamEvent] = []
            stream.reserveCapacity(records.count)
            for record in records {
                stream.append(try record.streamEvent())
                if record.origin == log.origin { ownOffset = max(ownOffset, record.offset) }
            }
            loadedState = OrderMerge.fold(base, stream)
            checkpointVersion = checkpoint?.version ?? 0
            guard let held = term, loadedState.newestTerm > held else { break }
            term = try await replication?.term(for: orderID, above: loadedState.newestTerm)
        }
        if let term, loadedState.newestTerm > term {
            throw EngineError.unavailable("order \(orderID): its stream holds term \(loadedState.newestTerm), newer than any this node could take; retry")
        }
        self.state = loadedState
        self.term = term
        self.checkpointVersion = checkpointVersion
        self.eventsHeld = eventsHeld
        self.storedDeadline = loadedState.nextHoldDeadlineMs
        self.loadedEpoch = epoch
        self.loaded = generation == self.generation
    }

    // Commands are serialized by hand: an actor lets another call in while
    // one awaits the log, and decide must always see the state after the
    // previous command's events.
    private func acquire() async {
        if !busy {
            busy = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    private func release() {
        if waiters.isEmpty {
            busy = false
        } else {
            waiters.removeFirst().resume()
        }
    }
}
