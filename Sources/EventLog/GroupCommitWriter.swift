import Foundation
import GRDB
import Logging
import Metrics

/// The single writer of one log file. Appends from any number of tasks queue
/// up while a transaction commits; the next transaction takes all of them
/// (group commit), so one fsync covers many events. Runs on its own thread so
/// blocking SQLite calls never occupy the Swift concurrency pool.
final class GroupCommitWriter: @unchecked Sendable {
    private enum Pending {
        case append(AppendRequest, CheckedContinuation<[EventRecord], any Error>)
        case replicate(ReplicatedBatch, CheckedContinuation<Int, any Error>)

        var eventCount: Int {
            switch self {
            case .append(let request, _): return request.events.count
            case .replicate(let batch, _): return batch.events.count
            }
        }

        func fail(_ error: any Error) {
            switch self {
            case .append(_, let continuation): continuation.resume(throwing: error)
            case .replicate(_, let continuation): continuation.resume(throwing: error)
            }
        }
    }

    private let pool: DatabasePool
    private let origin: String
    private let logID: String
    private let options: EventLogOptions
    private let logger: Logger
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var pending: [Pending] = []
    private var stopping = false
    private var commits = 0
    private var committedEvents = 0
    private var stopped = false
    private var committedThrough: Int64
    private var commitObservers: [@Sendable (Int64) -> Void] = []
    // Touched only by the writer thread once started.
    private var nextOffset: Int64
    private var thread: Thread?

    private let appendedCounter = Counter(label: "orderly_events_appended_total")
    private let batchEvents = Recorder(label: "orderly_append_batch_events")
    private let commitTimer = Metrics.Timer(label: "orderly_append_commit_seconds")

    init(pool: DatabasePool, origin: String, logID: String, lastOffset: Int64, options: EventLogOptions, logger: Logger) {
        self.pool = pool
        self.origin = origin
        self.logID = logID
        self.nextOffset = lastOffset + 1
        self.committedThrough = lastOffset
        self.options = options
        self.logger = logger
    }

    func start() {
        let thread = Thread { [self] in self.run() }
        thread.name = "orderly-log-writer-\(origin)"
        self.thread = thread
        thread.start()
    }

    /// Appends the request's events atomically with its checkpoint and timer
    /// change. Returns once they are committed per the durability setting.
    func append(_ request: AppendRequest) async throws -> [EventRecord] {
        try await withCheckedThrowingContinuation { continuation in
            enqueue(.append(request, continuation))
        }
    }

    /// Stores copies of a peer's events (those not already here) and moves
    /// the peer's position, in one transaction. Returns how many were new.
    func replicate(_ batch: ReplicatedBatch) async throws -> Int {
        try await withCheckedThrowingContinuation { continuation in
            enqueue(.replicate(batch, continuation))
        }
    }

    private func enqueue(_ item: Pending) {
        condition.lock()
        defer { condition.unlock() }
        if stopping {
            item.fail(EventLogError.closed)
            return
        }
        if pending.count >= options.pendingRequestsMax {
            item.fail(EventLogError.overloaded(pendingMax: options.pendingRequestsMax))
            return
        }
        pending.append(item)
        condition.signal()
    }

    /// Newest offset of this node's own log that is committed.
    var committedOffset: Int64 {
        condition.lock()
        defer { condition.unlock() }
        return committedThrough
    }

    /// Calls `body` after every commit that moved the own log forward.
    func onCommit(_ body: @escaping @Sendable (Int64) -> Void) {
        condition.lock()
        commitObservers.append(body)
        condition.unlock()
    }

    /// Transactions committed and the events they held, since start.
    var statistics: (commits: Int, events: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (commits, committedEvents)
    }

    /// Finishes what is queued, then stops the thread. Later appends fail.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !stopped && thread != nil {
            condition.wait()
        }
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while pending.isEmpty && !stopping {
                condition.wait()
            }
            if pending.isEmpty && stopping {
                stopped = true
                condition.broadcast()
                condition.unlock()
                return
            }
            let batch = takeBatch()
            condition.unlock()
            commit(batch)
        }
    }

    /// Takes requests from the head of the queue up to the batch limits.
    /// MUST be called with `condition` held.
    private func takeBatch() -> [Pending] {
        var count = 0
        var events = 0
        while count < pending.count, count < options.batchRequestsMax {
            let size = pending[count].eventCount
            if count > 0 && events + size > options.batchEventsMax { break }
            events += size
            count += 1
        }
        let batch = Array(pending[0..<count])
        pending.removeFirst(count)
        return batch
    }

    private func commit(_ batch: [Pending]) {
        let start = DispatchTime.now().uptimeNanoseconds
        let now = options.clock()
        var offset = nextOffset
        var results: [[EventRecord]] = []
        var copied: [Int] = []
        do {
            try pool.writeWithoutTransaction { db in
                try db.inTransaction(.immediate) {
                    offset = nextOffset
                    results.removeAll(keepingCapacity: true)
                    copied.removeAll(keepingCapacity: true)
                    for item in batch {
                        switch item {
                        case .append(let request, _):
                            results.append(try write(request, from: &offset, now: now, db))
                        case .replicate(let replicated, _):
                            copied.append(try write(replicated, now: now, db))
                        }
                    }
                    return .commit
                }
            }
        } catch {
            logger.error("append batch failed", metadata: ["requests": "\(batch.count)", "error": "\(error)"])
            for item in batch { item.fail(error) }
            return
        }
        let eventCount = offset - nextOffset
        nextOffset = offset
        condition.lock()
        commits += 1
        committedEvents += Int(eventCount)
        committedThrough = offset - 1
        let observers = eventCount > 0 ? commitObservers : []
        condition.unlock()
        appendedCounter.increment(by: Int(eventCount))
        batchEvents.record(eventCount)
        commitTimer.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
        var appended = results.makeIterator()
        var replicated = copied.makeIterator()
        for item in batch {
            switch item {
            case .append(_, let continuation): continuation.resume(returning: appended.next()!)
            case .replicate(_, let continuation): continuation.resume(returning: replicated.next()!)
            }
        }
        for observer in observers { observer(offset - 1) }
    }

    private func write(_ request: AppendRequest, from offset: inout Int64, now: Int64, _ db: Database) throws -> [EventRecord] {
        let insert = try db.cachedStatement(sql: """
            INSERT INTO events (\(EventRecord.columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        var records: [EventRecord] = []
        records.reserveCapacity(request.events.count)
        for event in request.events {
            let record = EventRecord(
                origin: origin, offset: offset, orderID: event.orderID, version: event.version,
                type: event.type, payload: event.payload, eventID: EventLog.eventID(origin: origin, logID: logID, offset: offset),
                recordedAt: now)
            try record.insert(using: insert, db)
            records.append(record)
            offset += 1
        }
        if let checkpoint = request.checkpoint {
            try EventLog.upsert(checkpoint, writtenAt: now, in: db)
        }
        if let deadline = request.deadline {
            switch deadline.change {
            case .set(let dueAt):
                try db.execute(
                    sql: "INSERT INTO deadlines (order_id, due_at) VALUES (?, ?) ON CONFLICT(order_id) DO UPDATE SET due_at = excluded.due_at",
                    arguments: [deadline.orderID, dueAt])
            case .clear:
                try db.execute(sql: "DELETE FROM deadlines WHERE order_id = ?", arguments: [deadline.orderID])
            }
        }
        return records
    }

    /// Copies of a peer's events: a row already here (same origin and
    /// offset, or same event id) is left as it is. A copy that lands at or
    /// below an order's checkpoint was not folded into it (two sides of a
    /// partition wrote the same versions), so that checkpoint is dropped
    /// and the next activation replays the order whole.
    private func write(_ batch: ReplicatedBatch, now: Int64, _ db: Database) throws -> Int {
        let insert = try db.cachedStatement(sql: """
            INSERT OR IGNORE INTO events (\(EventRecord.columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        let dropStaleCheckpoint = try db.cachedStatement(sql: "DELETE FROM checkpoints WHERE order_id = ? AND version >= ?")
        var inserted = 0
        for record in batch.events {
            try record.insert(using: insert, db)
            if db.changesCount > 0 {
                inserted += 1
                try dropStaleCheckpoint.execute(arguments: [record.orderID, record.version])
            }
        }
        if let through = batch.throughOffset {
            try db.execute(
                sql: """
                    INSERT INTO replica_positions (origin, through_offset, updated_at) VALUES (?, ?, ?)
                    ON CONFLICT(origin) DO UPDATE SET through_offset = excluded.through_offset, updated_at = excluded.updated_at
                    WHERE excluded.through_offset > replica_positions.through_offset
                    """,
                arguments: [batch.origin, through, now])
        }
        return inserted
    }
}
