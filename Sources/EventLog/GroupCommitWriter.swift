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
    // Most members are internal, not private: the extensions in
    // GroupCommitWriter+*.swift (sync, index, WAL, writes, statistics) use them.
    enum Pending {
        case append(AppendRequest, CheckedContinuation<[EventRecord], any Error>)
        case replicate(ReplicatedBatch, CheckedContinuation<Int, any Error>)

        var eventCount: Int {
            switch self {
            case .append(let request, _): return request.events.count
            case .replicate(let batch, _): return batch.events.count
            }
        }

        /// An append that writes nothing (`barrier`): it needs no
        /// transaction, only its place in the queue.
        var writesNothing: Bool {
            guard case .append(let request, _) = self else { return false }
            return request.events.isEmpty && request.checkpoint == nil && request.deadline == nil && request.promise == nil
                && request.ring == nil && request.departedLogsRead.isEmpty && request.check == nil
        }

        func fail(_ error: any Error) {
            switch self {
            case .append(_, let continuation): continuation.resume(throwing: error)
            case .replicate(_, let continuation): continuation.resume(throwing: error)
            }
        }
    }

    /// A committed transaction on its way to the disk.
    struct Written {
        let batch: [Pending]
        let appended: [[EventRecord]]
        let copied: [Int]
        /// Newest own offset once it is durable.
        let through: Int64
        /// Nothing was written (barriers only): no fsync is owed for it.
        var empty = false
        let ownEvents: Int
        let startNs: UInt64
    }

    let pool: DatabasePool
    private let path: String
    let origin: String
    private let logID: String
    let options: EventLogOptions
    let logger: Logger
    let condition = NSCondition()
    // Guarded by `condition`.
    private var pending: [Pending] = []
    /// Appends accepted and not yet answered (queued, being written or
    /// being synced): the bound on the writer's memory.
    var unanswered = 0
    var syncFailure: EventLogError?
    private var stopping = false
    var commits = 0
    var committedEvents = 0
    var syncs = 0
    /// CPU time of the writer thread, as of its last trip round the loop.
    var writerCPUNs: UInt64 = 0
    var stopped = false
    var committedThrough: Int64
    var commitObservers: [@Sendable (Int64) -> Void] = []
    // Touched only by the writer thread once started.
    var nextOffset: Int64
    /// Own offsets up to here are in `order_index` (committed).
    var indexedThrough: Int64
    /// Own events a put-back transaction indexed at once: `indexedThrough`
    /// moves there once it commits.
    var reindexed: (from: Int64, through: Int64)?
    /// The index batch under way (see `indexStep`).
    var indexJob: IndexJob?
    /// After a failed index batch, the next waits until then (monotonic ns).
    var indexRetryAtNs: UInt64 = 0
    /// Own events not yet in `order_index`, for readers by order.
    let tail: UnindexedTail
    /// Every order id this log holds events of (see `OrderPresence`):
    /// the writes below insert theirs before their transaction commits.
    let presence = OrderPresence()
    /// The newest durable own events, for followers' fetches.
    let recentOwn = RecentOwnEvents()
    /// Copies stored by followers' tail loops, not yet in `order_index`
    /// (their mark: `copyIndexBatches`). Gathered and backfilled copies may
    /// land anywhere in a log, so they are indexed as they are stored.
    let copies: UnindexedTail
    /// Per origin copied: its copies up to here are in `order_index`
    /// (`indexed_through:ORIGIN` in log_meta). Writer thread only.
    var copyWatermarks: [String: Int64]
    /// Index batches of copies committed (`copies_indexed_batches`).
    var copyIndexBatches: Int64
    /// The open transaction's entries for `copies`.
    var copyBuffer: [UnindexedTail.Entry] = []
    var copiesAddedInTransaction = 0
    /// Watermarks the open transaction starts (first tail-loop copies of an
    /// origin): in memory once it commits.
    var newWatermarks: [String: Int64] = [:]
    /// The open transaction's entries for `tail`, added under one lock
    /// before it commits (readers by order never look past the committed
    /// offset) or before a checkpoint reads them.
    var tailBuffer: [UnindexedTail.Entry] = []
    let eventIDPrefix: String
    private var thread: Thread?
    private var syncThread: Thread?
    /// Guards `written` and `writerDone`, the hand-off to the sync thread.
    let syncCondition = NSCondition()
    var written: [Written] = []
    var writerDone = false
    /// The WAL file, opened to fsync it; -1 when SQLite syncs instead.
    var walDescriptor: Int32 = -1
    /// Frames in the WAL after the newest commit (set by the WAL hook on the
    /// writer thread) and the end of the zeros written ahead of them.
    var walFrames = 0
    var walZeroedThrough = 0

    let appendedCounter = Counter(label: "orderly_events_appended_total")
    let indexedCounter = Counter(label: "orderly_events_indexed_total")
    let batchEvents = Recorder(label: "orderly_append_batch_events")
    let commitTimer = Metrics.Timer(label: "orderly_append_commit_seconds")

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

    /// Returns once every request enqueued before the call is answered
    /// (durable, or failed). When none is outstanding it returns at once;
    /// otherwise it waits in the queue as a request that writes nothing,
    /// which takes no transaction and no fsync of its own.
    func barrier() async throws {
        let (failure, idle) = outstanding()
        if let failure { throw failure }
        if idle { return }
        _ = try await append(AppendRequest(events: []))
    }

    /// Why the writer takes nothing more (nil: it does), and whether every
    /// request it took is answered.
    private func outstanding() -> (EventLogError?, Bool) {
        condition.lock()
        defer { condition.unlock() }
        return (syncFailure ?? (stopping ? .closed : nil), unanswered == 0)
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

    /// Finishes what is queued (written and synced), then stops both
    /// threads. Later appends fail.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !stopped && thread != nil {
            condition.wait()
        }
        // Each thread's closure holds this writer: without these the
        // writer, its database pool and their files would outlive the log.
        thread = nil
        syncThread = nil
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
                if indexWorkWaiting && DispatchTime.now().uptimeNanoseconds >= indexRetryAtNs {
                    // Idle with events not indexed: index them (a chunk at
                    // a time) unless work comes within the idle delay.
                    if !condition.wait(until: Date(timeIntervalSinceNow: options.indexIdleDelaySeconds)) && pending.isEmpty && !stopping {
                        condition.unlock()
                        indexStep()
                        condition.lock()
                    }
                } else {
                    condition.wait()
                }
            }
            if pending.isEmpty && stopping {
                condition.unlock()
                indexEverything()
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
            if (indexJob != nil || nextOffset - 1 - indexedThrough >= Int64(options.indexBatchEvents) || copies.pendingCount >= options.indexBatchEvents)
                && DispatchTime.now().uptimeNanoseconds >= indexRetryAtNs
            {
                indexStep()
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
        // An append whose check refuses it is answered now and left out:
        // the check runs right before the transaction that would hold it.
        var batch = batch
        if batch.contains(where: { if case .append(let request, _) = $0 { request.check != nil } else { false } }) {
            var kept: [Pending] = []
            for item in batch {
                if case .append(let request, _) = item, let reason = request.check?.reasonToRefuse() {
                    condition.lock()
                    unanswered -= 1
                    condition.unlock()
                    item.fail(EventLogError.refusedAtCommit(reason))
                } else {
                    kept.append(item)
                }
            }
            guard !kept.isEmpty else { return }
            batch = kept
        }
        let start = DispatchTime.now().uptimeNanoseconds
        if batch.allSatisfy(\.writesNothing) {
            syncCondition.lock()
            written.append(Written(
                batch: batch, appended: batch.map { _ in [] }, copied: [], through: nextOffset - 1, empty: true, ownEvents: 0, startNs: start))
            syncCondition.signal()
            syncCondition.unlock()
            return
        }
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
                            if let floor = replicated.reimportFloor {
                                copied.append(try reimport(replicated.events, floor: floor, offset: &offset, db))
                            } else {
                                copied.append(try write(replicated, now: now, db))
                            }
                        }
                    }
                    flushTailBuffer()
                }
            }
        } catch {
            reindexed = nil
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
        if let (from, through) = reindexed {
            indexedThrough = through
            tail.indexed(previous: from)
            reindexed = nil
        }
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

    /// BEGIN IMMEDIATE … COMMIT through cached statements (GRDB's
    /// `inTransaction` prepares both anew each time, thousands a second
    /// here); rolls back when the body or the commit fails.
    static func inImmediateTransaction(_ db: Database, _ body: () throws -> Void) throws {
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
}
