import Foundation
import GRDB
import GRDBSQLite
import Logging
import Metrics

/// The single writer of one log file. Appends from any number of tasks queue
/// up while a transaction commits; the next transaction takes all of them
/// (group commit), so one fsync covers many events. Runs on its own thread so
/// blocking SQLite calls never occupy the Swift concurrency pool.
///
/// Writing and syncing are pipelined over two threads. The writer thread
/// commits with SQLite's `synchronous=NORMAL` (the WAL is written, not
/// synced) and hands the batch to the sync thread, then starts the next
/// transaction at once. The sync thread `fdatasync`s the WAL, which makes
/// every commit written before the call durable, and only then answers the
/// batch, moves `committedOffset` and tells the commit observers (so no
/// follower ever copies an event that a power cut could take back). With
/// `synchronous=FULL` the writer would sit idle through every fsync while
/// the next batch waits.
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

    /// A committed transaction on its way to the disk.
    private struct Written {
        let batch: [Pending]
        let appended: [[EventRecord]]
        let copied: [Int]
        /// Newest own offset once it is durable.
        let through: Int64
        let ownEvents: Int
        let startNs: UInt64
    }

    private let pool: DatabasePool
    private let path: String
    let origin: String
    private let logID: String
    private let options: EventLogOptions
    private let logger: Logger
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var pending: [Pending] = []
    /// Appends accepted and not yet answered (queued, being written or
    /// being synced): the bound on the writer's memory.
    private var unanswered = 0
    private var syncFailure: EventLogError?
    private var stopping = false
    private var commits = 0
    private var committedEvents = 0
    private var syncs = 0
    /// CPU time of the writer thread, as of its last trip round the loop.
    private var writerCPUNs: UInt64 = 0
    private var stopped = false
    private var committedThrough: Int64
    private var commitObservers: [@Sendable (Int64) -> Void] = []
    // Touched only by the writer thread once started.
    private var nextOffset: Int64
    /// Own offsets up to here are in `order_index` (committed).
    private var indexedThrough: Int64
    /// After a failed index batch, the next waits until then (monotonic ns).
    private var indexRetryAtNs: UInt64 = 0
    /// Own events not yet in `order_index`, for readers by order.
    let tail: UnindexedTail
    /// Copies stored by followers' tail loops, not yet in `order_index`
    /// (their mark: `copyIndexBatches`). Gathered and backfilled copies may
    /// land anywhere in a log, so they are indexed as they are stored.
    let copies: UnindexedTail
    /// Per origin copied: its copies up to here are in `order_index`
    /// (`indexed_through:ORIGIN` in log_meta). Writer thread only.
    private var copyWatermarks: [String: Int64]
    /// Index batches of copies committed (`copies_indexed_batches`).
    private var copyIndexBatches: Int64
    /// The open transaction's entries for `copies`.
    private var copyBuffer: [UnindexedTail.Entry] = []
    private var copiesAddedInTransaction = 0
    /// Watermarks the open transaction starts (first tail-loop copies of an
    /// origin): in memory once it commits.
    private var newWatermarks: [String: Int64] = [:]
    /// The open transaction's entries for `tail`, added under one lock
    /// before it commits (readers by order never look past the committed
    /// offset) or before a checkpoint reads them.
    private var tailBuffer: [UnindexedTail.Entry] = []
    private let eventIDPrefix: String
    private var thread: Thread?
    private var syncThread: Thread?
    /// Guards `written` and `writerDone`, the hand-off to the sync thread.
    private let syncCondition = NSCondition()
    private var written: [Written] = []
    private var writerDone = false
    /// The WAL file, opened to fsync it; -1 when SQLite syncs instead.
    private var walDescriptor: Int32 = -1
    /// Frames in the WAL after the newest commit (set by the WAL hook on the
    /// writer thread) and the end of the zeros written ahead of them.
    private var walFrames = 0
    private var walZeroedThrough = 0

    private let appendedCounter = Counter(label: "orderly_events_appended_total")
    private let indexedCounter = Counter(label: "orderly_events_indexed_total")
    private let batchEvents = Recorder(label: "orderly_append_batch_events")
    private let commitTimer = Metrics.Timer(label: "orderly_append_commit_seconds")

    init(
        pool: DatabasePool, path: String, origin: String, logID: String, lastOffset: Int64, indexedThrough: Int64,
        copyWatermarks: [String: Int64], copyIndexBatches: Int64, options: EventLogOptions, logger: Logger
    ) {
        self.pool = pool
        self.path = path
        self.indexedThrough = indexedThrough
        self.tail = UnindexedTail(keptAfter: indexedThrough)
        self.copies = UnindexedTail(keptAfter: copyIndexBatches)
        self.copyWatermarks = copyWatermarks
        self.copyIndexBatches = copyIndexBatches
        self.eventIDPrefix = "\(origin)-\(logID)-"
        self.origin = origin
        self.logID = logID
        self.nextOffset = lastOffset + 1
        self.committedThrough = lastOffset
        self.options = options
        self.logger = logger
    }

    /// Opens the WAL for syncing (the file exists: opening the log wrote
    /// to it), then starts both threads. Without the WAL descriptor SQLite
    /// syncs every commit itself (`synchronous=FULL`).
    func start() throws {
        if options.durability == .fsync {
            // What an earlier run (or this open) wrote without syncing is
            // made durable before `committedOffset` offers it to anyone.
            let wal = open(path + "-wal", O_RDWR | O_CLOEXEC)
            if wal >= 0 {
                // The WAL's directory entry must survive a power cut too.
                let folder = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_CLOEXEC)
                if folder >= 0 {
                    _ = fsync(folder)
                    close(folder)
                }
                guard fdatasync(wal) == 0 else {
                    let code = errno
                    close(wal)
                    throw EventLogError.syncFailed(String(cString: strerror(code)))
                }
            }
            if wal >= 0 && options.pipelinedSync {
                walDescriptor = wal
                var info = stat()
                walZeroedThrough = fstat(wal, &info) == 0 ? Int(info.st_size) : 0
                try pool.writeWithoutTransaction { db in
                    sqlite3_wal_hook(db.sqliteConnection, walHook, Unmanaged.passUnretained(self).toOpaque())
                }
            } else {
                if wal >= 0 { close(wal) } else {
                    logger.warning("cannot open the WAL to sync it; SQLite syncs every commit", metadata: ["path": "\(path)-wal"])
                }
                try pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = FULL") }
            }
        }
        let thread = Thread { [self] in self.run() }
        thread.name = "orderly-log-writer-\(origin)"
        self.thread = thread
        let syncThread = Thread { [self] in self.runSync() }
        syncThread.name = "orderly-log-sync-\(origin)"
        self.syncThread = syncThread
        thread.start()
        syncThread.start()
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
        if let syncFailure {
            item.fail(syncFailure)
            return
        }
        if stopping {
            item.fail(EventLogError.closed)
            return
        }
        if unanswered >= options.pendingRequestsMax {
            item.fail(EventLogError.overloaded(pendingMax: options.pendingRequestsMax))
            return
        }
        pending.append(item)
        unanswered += 1
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

    /// fdatasync calls of the WAL by the sync thread, since start.
    var walSyncs: Int {
        condition.lock()
        defer { condition.unlock() }
        return syncs
    }

    /// Transactions committed and the events they held, since start, and
    /// the CPU time the writer thread has used (compare builds by it: it
    /// moves far less with the host than events/s do).
    var statistics: (commits: Int, events: Int, writerCPUSeconds: Double) {
        condition.lock()
        defer { condition.unlock() }
        return (commits, committedEvents, Double(writerCPUNs) / 1e9)
    }

    private static func threadCPUNs() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    /// Finishes what is queued (written and synced), then stops both
    /// threads. Later appends fail.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !stopped && thread != nil {
            condition.wait()
        }
        condition.unlock()
        if walDescriptor >= 0 {
            // SQLite's own hook again: ours points at this writer.
            try? pool.writeWithoutTransaction { db in
                _ = sqlite3_wal_autocheckpoint(db.sqliteConnection, Int32(clamping: options.walAutocheckpointPages))
            }
            close(walDescriptor)
            walDescriptor = -1
        }
    }

    private func run() {
        while true {
            let cpu = Self.threadCPUNs()
            condition.lock()
            writerCPUNs = cpu
            while pending.isEmpty && !stopping {
                if (nextOffset - 1 > indexedThrough || copies.pendingCount > 0) && DispatchTime.now().uptimeNanoseconds >= indexRetryAtNs {
                    // Idle with events not indexed: index them unless work
                    // comes within the idle delay.
                    if !condition.wait(until: Date(timeIntervalSinceNow: options.indexIdleDelaySeconds)) && pending.isEmpty && !stopping {
                        condition.unlock()
                        indexTail()
                        condition.lock()
                    }
                } else {
                    condition.wait()
                }
            }
            if pending.isEmpty && stopping {
                condition.unlock()
                indexTail()
                syncCondition.lock()
                writerDone = true
                syncCondition.signal()
                syncCondition.unlock()
                return
            }
            let batch = takeBatch()
            let failure = syncFailure
            condition.unlock()
            if let failure {
                // After a failed fsync nothing more is written or answered.
                condition.lock()
                unanswered -= batch.count
                condition.unlock()
                for item in batch { item.fail(failure) }
                continue
            }
            commit(batch)
            zeroWALAhead()
            if (nextOffset - 1 - indexedThrough >= Int64(options.indexBatchEvents) || copies.pendingCount >= options.indexBatchEvents)
                && DispatchTime.now().uptimeNanoseconds >= indexRetryAtNs
            {
                indexTail()
            }
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
        if count == pending.count {
            // The usual case: everything waiting goes, without copying it.
            defer { pending = [] }
            return pending
        }
        let batch = Array(pending[0..<count])
        pending.removeFirst(count)
        return batch
    }

    private func commit(_ batch: [Pending]) {
        let start = DispatchTime.now().uptimeNanoseconds
        let firstOffset = nextOffset
        let now = options.clock()
        var offset = nextOffset
        var results: [[EventRecord]] = []
        var copied: [Int] = []
        do {
            try pool.writeWithoutTransaction { db in
                try Self.inImmediateTransaction(db) {
                    for item in batch {
                        switch item {
                        case .append(let request, _):
                            results.append(try write(request, from: &offset, now: now, db))
                        case .replicate(let replicated, _):
                            copied.append(try write(replicated, now: now, db))
                        }
                    }
                    flushTailBuffer()
                }
            }
        } catch {
            logger.error("append batch failed", metadata: ["requests": "\(batch.count)", "error": "\(error)"])
            tailBuffer.removeAll(keepingCapacity: true)
            tail.removeFrom(offset: firstOffset)
            copyBuffer.removeAll(keepingCapacity: true)
            copies.removeLast(copiesAddedInTransaction)
            copiesAddedInTransaction = 0
            newWatermarks = [:]
            condition.lock()
            unanswered -= batch.count
            condition.unlock()
            for item in batch { item.fail(error) }
            return
        }
        copiesAddedInTransaction = 0
        copyWatermarks.merge(newWatermarks) { old, _ in old }
        newWatermarks = [:]
        let eventCount = offset - nextOffset
        nextOffset = offset
        syncCondition.lock()
        written.append(Written(
            batch: batch, appended: results, copied: copied, through: offset - 1, ownEvents: Int(eventCount), startNs: start))
        syncCondition.signal()
        syncCondition.unlock()
    }

    /// The sync thread: makes what the writer committed durable, then
    /// answers it. One fdatasync covers every transaction written before it.
    private func runSync() {
        while true {
            syncCondition.lock()
            while written.isEmpty && !writerDone {
                syncCondition.wait()
            }
            if written.isEmpty && writerDone {
                syncCondition.unlock()
                condition.lock()
                stopped = true
                condition.broadcast()
                condition.unlock()
                return
            }
            let ready = written
            written.removeAll(keepingCapacity: true)
            syncCondition.unlock()
            condition.lock()
            let failure = syncFailure
            condition.unlock()
            if let failure {
                // Linux reports a writeback error once: a later fdatasync
                // may succeed without the lost pages. Never answer again.
                fail(ready, failure)
                continue
            }
            if walDescriptor >= 0 {
                guard fdatasync(walDescriptor) == 0 else {
                    fail(ready, EventLogError.syncFailed(String(cString: strerror(errno))))
                    continue
                }
                condition.lock()
                syncs += 1
                condition.unlock()
            }
            answer(ready)
        }
    }

    private func answer(_ ready: [Written]) {
        var ownEvents = 0
        for transaction in ready { ownEvents += transaction.ownEvents }
        var requests = 0
        for transaction in ready { requests += transaction.batch.count }
        condition.lock()
        commits += ready.count
        committedEvents += ownEvents
        committedThrough = ready[ready.count - 1].through
        unanswered -= requests
        let observers = ownEvents > 0 ? commitObservers : []
        condition.unlock()
        let now = DispatchTime.now().uptimeNanoseconds
        for transaction in ready {
            appendedCounter.increment(by: transaction.ownEvents)
            batchEvents.record(transaction.ownEvents)
            commitTimer.recordNanoseconds(Int64(now - transaction.startNs))
            var appended = transaction.appended.makeIterator()
            var replicated = transaction.copied.makeIterator()
            for item in transaction.batch {
                switch item {
                case .append(_, let continuation): continuation.resume(returning: appended.next()!)
                case .replicate(_, let continuation): continuation.resume(returning: replicated.next()!)
                }
            }
        }
        let through = ready[ready.count - 1].through
        for observer in observers { observer(through) }
    }

    /// An fsync that fails leaves the file's durability unknown (the kernel
    /// may have dropped the dirty pages): the writer refuses everything from
    /// then on, and the node must be restarted to recover from the file.
    private func fail(_ ready: [Written], _ error: EventLogError) {
        condition.lock()
        if syncFailure == nil {
            logger.critical("fsync of the WAL failed; the log refuses appends until restarted", metadata: ["error": "\(error)"])
        }
        syncFailure = error
        for transaction in ready { unanswered -= transaction.batch.count }
        condition.unlock()
        for transaction in ready {
            for item in transaction.batch { item.fail(error) }
        }
    }

    private func write(_ request: AppendRequest, from offset: inout Int64, now: Int64, _ db: Database) throws -> [EventRecord] {
        let insert = try db.cachedStatement(sql: EventRecord.insertSQL)
        var records: [EventRecord] = []
        records.reserveCapacity(request.events.count)
        for event in request.events {
            let record = EventRecord(
                origin: origin, offset: offset, orderID: event.orderID, version: event.version,
                type: event.type, payload: event.payload, eventID: EventLog.eventID(prefix: eventIDPrefix, offset: offset),
                recordedAt: now)
            try record.insert(using: insert, db)
            tailBuffer.append(UnindexedTail.Entry(orderID: record.orderID, version: record.version, origin: origin, offset: offset))
            records.append(record)
            offset += 1
        }
        if let checkpoint = request.checkpoint {
            flushTailBuffer()
            let unindexed = (tail.entries(orderID: checkpoint.orderID, after: indexedThrough) ?? []) + unindexedCopies(of: checkpoint.orderID)
            try EventLog.upsert(checkpoint, writtenAt: now, in: db, unindexed: unindexed)
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

    /// SQLite calls this after each commit of the writer connection with the
    /// frames in the WAL. It does what SQLite's own hook does (checkpoint
    /// past `walAutocheckpointPages`) and notes where the WAL ends.
    fileprivate func walCommitted(frames: Int, _ connection: OpaquePointer?, _ schema: UnsafePointer<CChar>?) {
        walFrames = frames
        if frames >= options.walAutocheckpointPages {
            sqlite3_wal_checkpoint(connection, schema)
        }
    }

    /// Writes zeros ahead of SQLite's newest frame, 256 KiB at a time (each
    /// a short pause of the writer, and one fsync that journals), up to
    /// the size the WAL reaches between checkpoints (etcd preallocates its
    /// WAL for the same reason). An fdatasync after SQLite overwrites blocks
    /// the file already has need not journal a new size or extent, and takes
    /// about half as long as one after an append (106 µs against 190 µs
    /// here). SQLite reads frames only up to the first invalid one: zeros
    /// are invalid. Runs on the writer thread between transactions; the
    /// sync thread's next fdatasync covers the zeros too.
    private func zeroWALAhead() {
        guard walDescriptor >= 0 else { return }
        let frameBytes = options.pageBytes + 24
        let target = 32 + options.walAutocheckpointPages * frameBytes
        let end = 32 + walFrames * frameBytes
        guard walZeroedThrough < target, walZeroedThrough - end < Self.walZeroChunk / 2 else { return }
        let from = max(walZeroedThrough, end)
        let count = min(Self.walZeroChunk, target - from)
        let wrote = Self.zeros.withUnsafeBytes { pwrite(walDescriptor, $0.baseAddress, count, off_t(from)) }
        if wrote > 0 { walZeroedThrough = from + wrote }
    }

    private static let walZeroChunk = 1 << 18
    private static let zeros = [UInt8](repeating: 0, count: walZeroChunk)

    /// BEGIN IMMEDIATE … COMMIT through cached statements (GRDB's
    /// `inTransaction` prepares both anew each time, thousands a second
    /// here); rolls back when the body or the commit fails.
    private static func inImmediateTransaction(_ db: Database, _ body: () throws -> Void) throws {
        try db.cachedStatement(sql: "BEGIN IMMEDIATE TRANSACTION").execute()
        do {
            try body()
            try db.cachedStatement(sql: "COMMIT TRANSACTION").execute()
        } catch {
            if db.isInsideTransaction {
                try? db.cachedStatement(sql: "ROLLBACK TRANSACTION").execute()
            }
            throw error
        }
    }

    private func flushTailBuffer() {
        flushCopyBuffer()
        guard !tailBuffer.isEmpty else { return }
        tail.add(tailBuffer)
        tailBuffer.removeAll(keepingCapacity: true)
    }

    /// Like `flushTailBuffer`, for copies: added before the commit, taken
    /// back if it fails.
    private func flushCopyBuffer() {
        guard !copyBuffer.isEmpty else { return }
        copies.add(copyBuffer)
        copiesAddedInTransaction += copyBuffer.count
        copyBuffer.removeAll(keepingCapacity: true)
    }

    /// The order's copies not in `order_index` as the writer sees it now.
    private func unindexedCopies(of orderID: String) -> [UnindexedTail.Entry] {
        copies.entries(orderID: orderID, mark: copyIndexBatches) { [copyWatermarks, newWatermarks] entry in
            entry.offset > (copyWatermarks[entry.origin] ?? newWatermarks[entry.origin] ?? 0)
        } ?? []
    }

    /// Adds the own events written since the last call to `order_index`,
    /// sorted (SQLite sorts them as it reads them back from the log), in one
    /// transaction with the new `indexed_through`: a batch of them shares
    /// the index pages that commits one by one would each rewrite. Not
    /// synced here; the next fsync covers it, and after a crash
    /// `EventLog.open` indexes whatever the file's `indexed_through` lacks.
    /// Runs on the writer thread between commits.
    private func indexTail() {
        let through = nextOffset - 1
        let copiesPending = copies.pendingCount > 0
        let newest = copiesPending ? copies.newestPendingOffsets : [:]
        let copyRanges = newest.compactMap { origin, end -> (String, Int64, Int64)? in
            let from = copyWatermarks[origin] ?? 0
            return end > from ? (origin, from, end) : nil
        }
        guard through > indexedThrough || copiesPending else { return }
        let from = indexedThrough
        let batches = copyIndexBatches
        do {
            try pool.writeWithoutTransaction { db in
                try Self.inImmediateTransaction(db) {
                    if through > from {
                        try EventLog.index(origin: origin, after: from, through: through, db)
                    }
                    if copiesPending {
                        for (copyOrigin, after, end) in copyRanges {
                            try EventLog.index(copiesOf: copyOrigin, after: after, through: end, db)
                        }
                        try EventLog.setCopyIndexBatches(batches + 1, db)
                    }
                }
            }
        } catch {
            // The entries stay in the tails; the next try is a second away.
            logger.error("indexing the newest events failed", metadata: ["through": "\(through)", "error": "\(error)"])
            indexRetryAtNs = DispatchTime.now().uptimeNanoseconds + 1_000_000_000
            return
        }
        if through > from {
            indexedThrough = through
            // Readers whose snapshot still says `from` need the entries after
            // it: forget only what an older snapshot would ask for.
            tail.indexed(previous: from)
            indexedCounter.increment(by: Int(through - from))
        }
        if copiesPending {
            for (copyOrigin, _, end) in copyRanges { copyWatermarks[copyOrigin] = end }
            copyIndexBatches = batches + 1
            copies.indexed(previous: batches)
        }
    }

    /// Copies of a peer's events: a row already here (same origin and
    /// offset, hence same event id) is left as it is. A copy that lands at or
    /// below an order's checkpoint was not folded into it (two sides of a
    /// partition wrote the same versions), so that checkpoint is dropped
    /// and the next activation replays the order whole.
    private func write(_ batch: ReplicatedBatch, now: Int64, _ db: Database) throws -> Int {
        let insert = try db.cachedStatement(sql: EventRecord.insertOrIgnoreSQL)
        let dropStaleCheckpoint = try db.cachedStatement(sql: "DELETE FROM checkpoints WHERE order_id = ? AND version >= ?")
        let index = try db.cachedStatement(sql: #"INSERT OR IGNORE INTO order_index (order_id, version, origin, "offset") VALUES (?, ?, ?, ?)"#)
        // A tail loop's batch comes in offset order: its copies go to the
        // index in the background, by ranges of their origin's log (like
        // own events; each random insert into the index rewrote a page in
        // the WAL). Gathered and backfilled copies are indexed now.
        let deferIndex = batch.throughOffset != nil
        var inserted = 0
        for record in batch.events {
            try record.insert(using: insert, db)
            if db.changesCount > 0 {
                inserted += 1
                if deferIndex {
                    if copyWatermarks[record.origin] == nil && newWatermarks[record.origin] == nil {
                        // The first tail-loop copy of this origin: what is
                        // below it was indexed as it was stored.
                        newWatermarks[record.origin] = record.offset - 1
                        try EventLog.startCopyWatermark(origin: record.origin, at: record.offset - 1, db)
                    }
                    copyBuffer.append(UnindexedTail.Entry(orderID: record.orderID, version: record.version, origin: record.origin, offset: record.offset))
                } else {
                    // Like dropStaleCheckpoint, through GRDB: copies are not
                    // the append path that EventRecord.insert binds by hand for.
                    try index.execute(arguments: [record.orderID, record.version, record.origin, record.offset])
                }
                try dropStaleCheckpoint.execute(arguments: [record.orderID, record.version])
            }
        }
        if let through = batch.throughOffset {
            try db.cachedStatement(sql: """
                INSERT INTO replica_positions (origin, through_offset, updated_at) VALUES (?, ?, ?)
                ON CONFLICT(origin) DO UPDATE SET through_offset = excluded.through_offset, updated_at = excluded.updated_at
                WHERE excluded.through_offset > replica_positions.through_offset
                """).execute(arguments: [batch.origin, through, now])
        }
        return inserted
    }
}

/// `sqlite3_wal_hook` callback of a pipelined writer (see `walCommitted`).
private func walHook(_ context: UnsafeMutableRawPointer?, _ connection: OpaquePointer?, _ schema: UnsafePointer<CChar>?, _ frames: Int32) -> Int32 {
    guard let context else { return SQLITE_OK }
    Unmanaged<GroupCommitWriter>.fromOpaque(context).takeUnretainedValue().walCommitted(frames: Int(frames), connection, schema)
    return SQLITE_OK
}
