import Foundation
import GRDB
import Logging
import Metrics

/// The single writer of one log file. Appends from any number of tasks queue
/// up while a transaction commits; the next transaction takes all of them
/// (group commit), so one fsync covers many events. Runs on its own thread so
/// blocking SQLite calls never occupy the Swift concurrency pool.
final class GroupCommitWriter: @unchecked Sendable {
    private struct Pending {
        let request: AppendRequest
        let continuation: CheckedContinuation<[EventRecord], any Error>
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
            condition.lock()
            defer { condition.unlock() }
            if stopping {
                continuation.resume(throwing: EventLogError.closed)
                return
            }
            if pending.count >= options.pendingRequestsMax {
                continuation.resume(throwing: EventLogError.overloaded(pendingMax: options.pendingRequestsMax))
                return
            }
            pending.append(Pending(request: request, continuation: continuation))
            condition.signal()
        }
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
            let size = pending[count].request.events.count
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
        results.reserveCapacity(batch.count)
        do {
            try pool.writeWithoutTransaction { db in
                try db.inTransaction(.immediate) {
                    offset = nextOffset
                    results.removeAll(keepingCapacity: true)
                    let insert = try db.cachedStatement(sql: """
                        INSERT INTO events (\(EventRecord.columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """)
                    for item in batch {
                        var records: [EventRecord] = []
                        records.reserveCapacity(item.request.events.count)
                        for event in item.request.events {
                            let record = EventRecord(
                                origin: origin, offset: offset, orderID: event.orderID, version: event.version,
                                type: event.type, payload: event.payload, eventID: EventLog.eventID(origin: origin, logID: logID, offset: offset),
                                recordedAt: now)
                            try record.insert(using: insert, db)
                            records.append(record)
                            offset += 1
                        }
                        if let checkpoint = item.request.checkpoint {
                            try EventLog.upsert(checkpoint, writtenAt: now, in: db)
                        }
                        if let deadline = item.request.deadline {
                            switch deadline.change {
                            case .set(let dueAt):
                                try db.execute(
                                    sql: "INSERT INTO deadlines (order_id, due_at) VALUES (?, ?) ON CONFLICT(order_id) DO UPDATE SET due_at = excluded.due_at",
                                    arguments: [deadline.orderID, dueAt])
                            case .clear:
                                try db.execute(sql: "DELETE FROM deadlines WHERE order_id = ?", arguments: [deadline.orderID])
                            }
                        }
                        results.append(records)
                    }
                    return .commit
                }
            }
        } catch {
            logger.error("append batch failed", metadata: ["requests": "\(batch.count)", "error": "\(error)"])
            for item in batch { item.continuation.resume(throwing: error) }
            return
        }
        let eventCount = offset - nextOffset
        nextOffset = offset
        condition.lock()
        commits += 1
        committedEvents += Int(eventCount)
        condition.unlock()
        appendedCounter.increment(by: Int(eventCount))
        batchEvents.record(eventCount)
        commitTimer.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
        for (item, records) in zip(batch, results) {
            item.continuation.resume(returning: records)
        }
    }
}
