import Synchronization

/// A node's event log in memory, for the deterministic simulation: the same
/// contract as the SQLite log (the shared contract suite runs against both),
/// with a disk that can crash.
///
/// Like the SQLite writer it commits at once (readers see a copy as soon as
/// it is committed; own events only once durable) and answers a commit only
/// after a sync, which `scheduleSync` runs later, covering every commit
/// before it (group commit). What a crash keeps is the `LogImage` of the
/// synced transactions, plus, if the simulator says so, a prefix of those
/// not synced yet (the WAL kept some frames): a commit answered is never
/// lost, one not answered may or may not survive. A failed sync is sticky,
/// as Linux reports a writeback error once: every waiting and later write
/// fails until the node restarts from what is durable.
public final class InMemoryLogStore: LogStore, Sendable {
    public let origin: String
    public let logID: String

    private enum Waiter {
        case append(CheckedContinuation<[EventRecord], any Error>, [EventRecord])
        case replicate(CheckedContinuation<Int, any Error>, Int)
        case barrier(CheckedContinuation<Void, any Error>)

        func fail(_ error: any Error) {
            switch self {
            case .append(let continuation, _): continuation.resume(throwing: error)
            case .replicate(let continuation, _): continuation.resume(throwing: error)
            case .barrier(let continuation): continuation.resume(throwing: error)
            }
        }

        func succeed() {
            switch self {
            case .append(let continuation, let records): continuation.resume(returning: records)
            case .replicate(let continuation, let inserted): continuation.resume(returning: inserted)
            case .barrier(let continuation): continuation.resume()
            }
        }
    }

    private struct State {
        /// Every committed transaction (what readers see).
        var visible: LogImage
        /// The synced transactions: what survives a crash.
        var durable: LogImage
        /// Committed, not synced yet, oldest first.
        var pending: [(operation: Operation, waiter: Waiter)] = []
        var syncScheduled = false
        var committedOffset: Int64
        var observers: [@Sendable (Int64) -> Void] = []
        var failure: EventLogError?
        var failNextSync = false
        var closed = false
        var crashed = false
    }

    private let state: Mutex<State>
    private let clock: @Sendable () -> Int64
    private let scheduleSync: @Sendable (@escaping @Sendable () -> Void) -> Void

    /// Opens a log on `disk` (nil or an image without a log id: a new, empty
    /// log with `newLogID`).
    ///
    /// - Parameters:
    ///   - clock: wall time in ms since the epoch (`recorded_at`).
    ///   - scheduleSync: runs its argument later, once: the sync that makes
    ///     every commit before it durable.
    public init(
        origin: String, disk: LogImage?, newLogID: String, clock: @escaping @Sendable () -> Int64,
        scheduleSync: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void
    ) {
        var image = disk ?? LogImage()
        if image.logID.isEmpty { image.logID = newLogID }
        self.origin = origin
        self.logID = image.logID
        self.clock = clock
        self.scheduleSync = scheduleSync
        let last = image.lastOffset(of: origin)
        state = Mutex(State(visible: image, durable: image, committedOffset: last))
    }

    /// A store whose syncs run as soon as the caller's task yields (tests).
    public convenience init(origin: String, disk: LogImage? = nil, newLogID: String = "0123abcd", clock: @escaping @Sendable () -> Int64) {
        self.init(origin: origin, disk: disk, newLogID: newLogID, clock: clock) { sync in
            Task { sync() }
        }
    }

    public var committedOffset: Int64 { state.withLock { $0.committedOffset } }

    public var failure: EventLogError? { state.withLock { $0.failure } }

    // MARK: Writing

    public func append(_ request: AppendRequest) async throws -> [EventRecord] {
        try request.validate()
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[EventRecord], any Error>) in
            if let reason = request.check?.reasonToRefuse() {
                continuation.resume(throwing: EventLogError.refusedAtCommit(reason))
                return
            }
            let refusal = commit { state -> (Operation, Waiter)? in
                let now = clock()
                var offset = state.visible.lastOffset(of: origin)
                let prefix = "\(origin)-\(logID)-"
                let records = request.events.map { event -> EventRecord in
                    offset += 1
                    return EventRecord(
                        origin: origin, offset: offset, orderID: event.orderID, version: event.version, type: event.type,
                        payload: event.payload, eventID: EventID.make(prefix: prefix, offset: offset), recordedAt: now, term: event.term)
                }
                var checkpoint = request.checkpoint
                checkpoint?.writtenAt = now
                let operation = Operation.append(records, checkpoint, request.deadline, request.promise, request.ring, request.departedLogsRead)
                _ = state.visible.apply(operation, nowMs: now)
                return (operation, .append(continuation, records))
            }
            if let refusal { continuation.resume(throwing: refusal) }
        }
    }

    public func barrier() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let refusal = commit { _ in (.barrier, .barrier(continuation)) }
            if let refusal { continuation.resume(throwing: refusal) }
        }
    }

    public func reimport(_ events: [EventRecord], floor: Int64) async throws -> Int {
        try ReplicatedBatch.validateOwn(events, own: origin)
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int, any Error>) in
            let refusal = commit { state -> (Operation, Waiter)? in
                let operation = Operation.reimport(events, origin: origin, floor: max(0, floor))
                let inserted = state.visible.apply(operation, nowMs: clock())
                return (operation, .replicate(continuation, inserted))
            }
            if let refusal { continuation.resume(throwing: refusal) }
        }
    }

    public func replicate(_ batch: ReplicatedBatch) async throws -> Int {
        try batch.validate(own: origin)
        if batch.events.isEmpty && batch.throughOffset == nil && batch.deadlines.isEmpty { return 0 }
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int, any Error>) in
            let refusal = commit { state -> (Operation, Waiter)? in
                let operation = Operation.replicate(batch)
                let inserted = state.visible.apply(operation, nowMs: clock())
                return (operation, .replicate(continuation, inserted))
            }
            if let refusal { continuation.resume(throwing: refusal) }
        }
    }

    /// Commits what `body` applies to the visible image and queues its
    /// waiter for the next sync; returns the refusal when the log takes no
    /// writes.
    private func commit(_ body: (inout State) -> (Operation, Waiter)?) -> EventLogError? {
        let schedule = state.withLock { state -> Bool? in
            if let failure = state.failure { _ = failure; return nil }
            if state.closed || state.crashed { return nil }
            guard let (operation, waiter) = body(&state) else { return false }
            state.pending.append((operation, waiter))
            if state.syncScheduled { return false }
            state.syncScheduled = true
            return true
        }
        guard let schedule else {
            return state.withLock { $0.failure ?? .closed }
        }
        if schedule { scheduleSync { [weak self] in self?.sync() } }
        return nil
    }

    /// Makes every pending transaction durable and answers it, or, when
    /// told to fail, fails them all and every later write.
    private func sync() {
        let (waiters, observers, through, failure) = state.withLock {
            state -> ([Waiter], [@Sendable (Int64) -> Void], Int64, EventLogError?) in
            state.syncScheduled = false
            if state.crashed { return ([], [], 0, nil) }
            let waiters = state.pending.map(\.waiter)
            if state.failNextSync || state.failure != nil {
                let failure = state.failure ?? EventLogError.syncFailed("input/output error (simulated)")
                state.failure = failure
                state.failNextSync = false
                state.pending = []
                return (waiters, [], 0, failure)
            }
            let now = clock()
            var appended = false
            for (operation, _) in state.pending {
                _ = state.durable.apply(operation, nowMs: now)
                if case .append(let records, _, _, _, _, _) = operation, !records.isEmpty { appended = true }
            }
            state.pending = []
            state.committedOffset = state.durable.lastOffset(of: origin)
            return (waiters, appended ? state.observers : [], state.committedOffset, nil)
        }
        if let failure {
            for waiter in waiters { waiter.fail(failure) }
            return
        }
        for waiter in waiters { waiter.succeed() }
        for observer in observers { observer(through) }
    }

    public func onCommit(_ body: @escaping @Sendable (Int64) -> Void) {
        state.withLock { $0.observers.append(body) }
    }

    public func close() {
        state.withLock { $0.closed = true }
    }

    // MARK: Reading

    public func replicaPositions() async throws -> [String: Int64] {
        try read { $0.visible.positions }
    }

    public func ringMembers() async throws -> [String: Bool] {
        try read { $0.visible.ringMembers }
    }

    public func departedLogsRead() async throws -> Set<DepartedLogRead> {
        try read { $0.visible.departedLogsRead }
    }

    public func heldOffsets() async throws -> [String: Int64] {
        try read { $0.visible.heldOffsets }
    }

    public func promises() async throws -> [Promise] {
        try read { $0.visible.promises.values.sorted { $0.group < $1.group } }
    }

    public func checkpoint(orderID: String) async throws -> Checkpoint? {
        try read { $0.visible.checkpoints[orderID] }
    }

    public func events(orderID: String, afterVersion: Int64) async throws -> [EventRecord] {
        try read { state in
            state.visible.events(orderID: orderID, afterVersion: afterVersion, own: origin, durableThrough: state.committedOffset)
        }
    }

    public func load(orderID: String) async throws -> (checkpoint: Checkpoint?, events: [EventRecord]) {
        try read { state in
            let checkpoint = state.visible.checkpoints[orderID]
            let events = state.visible.events(
                orderID: orderID, afterVersion: checkpoint?.version ?? 0, own: origin, durableThrough: state.committedOffset)
            return (checkpoint, events)
        }
    }

    public func scan(origin: String?, fromOffset: Int64, limit: Int) async throws -> [EventRecord] {
        try read { $0.visible.scan(origin: origin ?? self.origin, fromOffset: fromOffset, limit: limit) }
    }

    public func deadlines(limit: Int) async throws -> [(orderID: String, dueAt: Int64)] {
        try read { state in
            Array(state.visible.deadlines.map { (orderID: $0.key, dueAt: $0.value) }
                .sorted { ($0.dueAt, $0.orderID) < ($1.dueAt, $1.orderID) }
                .prefix(limit))
        }
    }

    private func read<T>(_ body: (State) -> T) throws -> T {
        try state.withLock { state in
            if state.crashed { throw EventLogError.closed }
            if let failure = state.failure { throw failure }
            return body(state)
        }
    }

    // MARK: The simulated disk

    /// The power goes out: what was synced survives, plus the first
    /// `keepingUnsynced` transactions committed after the last sync (a WAL
    /// keeps a prefix of what it wrote). Waiting writers get `.closed`: in
    /// the simulation their node's executor is dead already, so they never
    /// run again (their tasks are dropped), but no continuation is left
    /// unanswered. Returns the disk a restarted node opens.
    public func crash(keepingUnsynced: Int = 0) -> LogImage {
        let (disk, waiters) = state.withLock { state in
            state.crashed = true
            var disk = state.durable
            if state.failure == nil {
                let now = clock()
                for (operation, _) in state.pending.prefix(max(0, keepingUnsynced)) { _ = disk.apply(operation, nowMs: now) }
            }
            let waiters = state.pending.map(\.waiter)
            state.pending = []
            return (disk, waiters)
        }
        for waiter in waiters { waiter.fail(EventLogError.closed) }
        return disk
    }

    /// Transactions committed and not yet synced.
    public var unsyncedCount: Int { state.withLock { $0.pending.count } }

    /// An fsync of the file now, by another process (`orderly backup` after
    /// its snapshot): every committed transaction becomes durable (and is
    /// answered).
    public func syncNow() {
        let crashed = state.withLock { $0.crashed }
        if !crashed { sync() }
    }

    /// The next sync fails (EIO), and with it every later write.
    public func failNextSync() {
        state.withLock { $0.failNextSync = true }
    }

    /// Whether a sync has failed (the log refuses every write and read).
    public var hasFailed: Bool { failure != nil }

    /// What a reader of the file would see now (every committed transaction).
    public var image: LogImage { state.withLock { $0.visible } }
}

/// The contents of a simulated log file: the rows of its tables.
public struct LogImage: Sendable, Equatable {
    public var logID: String = ""
    /// Per origin, its events by offset.
    public private(set) var events: [String: [Int64: EventRecord]] = [:]
    /// Per order, where its events are.
    private var byOrder: [String: [Key]] = [:]
    public private(set) var checkpoints: [String: Checkpoint] = [:]
    public private(set) var deadlines: [String: Int64] = [:]
    public private(set) var positions: [String: Int64] = [:]
    public private(set) var promises: [String: Promise] = [:]
    public private(set) var ringMembers: [String: Bool] = [:]
    public private(set) var departedLogsRead: Set<DepartedLogRead> = []
    private var lastOffsets: [String: Int64] = [:]

    private struct Key: Sendable, Equatable {
        var origin: String
        var offset: Int64
    }

    public init() {}

    public func lastOffset(of origin: String) -> Int64 { lastOffsets[origin] ?? 0 }

    /// Per origin, the highest offset of an event the file holds.
    public var heldOffsets: [String: Int64] { events.compactMapValues { $0.keys.max() } }

    /// Every event of the file, ordered by origin then offset.
    public var allEvents: [EventRecord] {
        events.keys.sorted().flatMap { origin in events[origin]!.values.sorted { $0.offset < $1.offset } }
    }

    public var orderIDs: [String] { byOrder.keys.sorted() }

    /// Every event of an order in the file, in (version, origin, offset)
    /// order.
    public func events(of orderID: String) -> [EventRecord] {
        events(orderID: orderID, afterVersion: 0, own: "", durableThrough: .max)
    }

    /// The event of `origin`'s log at `offset`, if the file holds it.
    public func event(origin: String, offset: Int64) -> EventRecord? {
        events[origin]?[offset]
    }

    func events(orderID: String, afterVersion: Int64, own: String, durableThrough: Int64) -> [EventRecord] {
        guard let keys = byOrder[orderID] else { return [] }
        var records: [EventRecord] = []
        for key in keys {
            guard let record = events[key.origin]?[key.offset], record.version > afterVersion else { continue }
            if key.origin == own && key.offset > durableThrough { continue }
            records.append(record)
        }
        records.sort { ($0.version, $0.origin, $0.offset) < ($1.version, $1.origin, $1.offset) }
        return records
    }

    func scan(origin: String, fromOffset: Int64, limit: Int) -> [EventRecord] {
        guard let log = events[origin], limit > 0 else { return [] }
        var records: [EventRecord] = []
        var offset = max(1, fromOffset)
        let last = lastOffset(of: origin)
        // Copies may have gaps (placement keeps only some orders).
        if log.count < 64 || Int64(log.count) * 2 < last - offset {
            records = log.values.filter { $0.offset >= offset }.sorted { $0.offset < $1.offset }
            return Array(records.prefix(limit))
        }
        while offset <= last && records.count < limit {
            if let record = log[offset] { records.append(record) }
            offset += 1
        }
        return records
    }

    /// Applies one committed transaction; returns the copies it inserted.
    fileprivate mutating func apply(_ operation: Operation, nowMs: Int64) -> Int {
        switch operation {
        case .barrier:
            return 0
        case .reimport(let records, let origin, let floor):
            var inserted = 0
            for record in records where events[record.origin]?[record.offset] == nil {
                insert(record)
                inserted += 1
                if let checkpoint = checkpoints[record.orderID], checkpoint.version >= record.version {
                    checkpoints[record.orderID] = nil
                }
            }
            if floor > lastOffsets[origin] ?? 0 { lastOffsets[origin] = floor }
            return inserted
        case .append(let records, let checkpoint, let deadline, let promise, let ring, let read):
            for record in records {
                insert(record)
                // An own event at or below a checkpoint (an order's last
                // event written again in a new term) was not folded into it.
                if let checkpoint = checkpoints[record.orderID], checkpoint.version >= record.version {
                    checkpoints[record.orderID] = nil
                }
            }
            if let ring { ringMembers = ring }
            departedLogsRead.formUnion(read)
            if let promise {
                let known = promises[promise.group]
                if known.map({ (promise.term, promise.leader) > ($0.term, $0.leader) }) ?? true { promises[promise.group] = promise }
            }
            if let checkpoint { upsert(checkpoint) }
            if let deadline {
                switch deadline.change {
                case .set(let dueAt): deadlines[deadline.orderID] = dueAt
                case .clear: deadlines[deadline.orderID] = nil
                }
            }
            return 0
        case .replicate(let batch):
            var inserted = 0
            for record in batch.events where events[record.origin]?[record.offset] == nil {
                insert(record)
                inserted += 1
                // A copy at or below a checkpoint was not folded into it.
                if let checkpoint = checkpoints[record.orderID], checkpoint.version >= record.version {
                    checkpoints[record.orderID] = nil
                }
            }
            for (orderID, dueAt) in batch.deadlines {
                deadlines[orderID] = min(deadlines[orderID] ?? .max, dueAt)
            }
            if let through = batch.throughOffset, through > positions[batch.origin] ?? .min {
                positions[batch.origin] = through
            }
            return inserted
        }
    }

    private mutating func insert(_ record: EventRecord) {
        events[record.origin, default: [:]][record.offset] = record
        byOrder[record.orderID, default: []].append(Key(origin: record.origin, offset: record.offset))
        if record.offset > lastOffsets[record.origin] ?? 0 { lastOffsets[record.origin] = record.offset }
    }

    /// The file without its owner's own events and without checkpoints
    /// (they may fold those events): what `orderly restore` leaves of a
    /// log it puts back, so the node takes its own log back from its
    /// peers' copies, as after a replaced disk.
    public func withoutOwnLog(of origin: String) -> LogImage {
        var image = self
        image.events[origin] = nil
        image.lastOffsets[origin] = nil
        for (order, keys) in image.byOrder {
            let kept = keys.filter { $0.origin != origin }
            image.byOrder[order] = kept.isEmpty ? nil : kept
        }
        image.checkpoints = [:]
        return image
    }

    /// A checkpoint replaces an older one only; one that covers a count of
    /// events is written only if the file holds exactly that many.
    private mutating func upsert(_ checkpoint: Checkpoint) {
        if let covered = checkpoint.coveredEvents {
            let held = (byOrder[checkpoint.orderID] ?? []).count { key in
                (events[key.origin]?[key.offset]?.version ?? .max) <= checkpoint.version
            }
            guard held == covered else { return }
        }
        if let existing = checkpoints[checkpoint.orderID], existing.version >= checkpoint.version { return }
        var stored = checkpoint
        stored.coveredEvents = nil
        checkpoints[checkpoint.orderID] = stored
    }
}

/// One committed transaction of the in-memory log.
fileprivate enum Operation: Sendable {
    case reimport([EventRecord], origin: String, floor: Int64)
    case append([EventRecord], Checkpoint?, (orderID: String, change: DeadlineChange)?, Promise?, [String: Bool]?, [DepartedLogRead])
    case replicate(ReplicatedBatch)
    case barrier
}
