import Foundation
import GRDB
import GRDBSQLite
import Logging
import Metrics

extension GroupCommitWriter {
    func flushTailBuffer() {
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
    func unindexedCopies(of orderID: String) -> [UnindexedTail.Entry] {
        copies.entries(orderID: orderID, mark: copyIndexBatches) { [copyWatermarks, newWatermarks] entry in
            entry.offset > (copyWatermarks[entry.origin] ?? newWatermarks[entry.origin] ?? 0)
        } ?? []
    }

    /// Whether events wait for `order_index`, or a batch is under way.
    var indexWorkWaiting: Bool {
        indexJob != nil || nextOffset - 1 > indexedThrough || copies.pendingCount > 0
    }

    /// Runs an index batch to its end (the writer stops, or puts back own
    /// events: their transaction moves the marks itself).
    func indexEverything() {
        while indexWorkWaiting && DispatchTime.now().uptimeNanoseconds >= indexRetryAtNs {
            indexStep(waitForSort: true)
        }
    }

    /// Adds what waits for `order_index` in sorted batches, one chunk a
    /// call. A batch takes the own events written since the last one and
    /// the copies the tail loops stored, sorts them by key, and inserts them
    /// `indexChunkRows` at a time, one transaction each, with commits of
    /// appends in between: the chunks cover disjoint key ranges, so they
    /// share the index pages that one large transaction would (what commits
    /// one by one would each rewrite), and no append waits behind more than
    /// one chunk. The last chunk moves the marks (`indexed_through`, each
    /// origin's copy watermark, the count of copy batches); until then
    /// readers find the batch's events in the writer's memory, and those of
    /// chunks already committed in the index too, and count each once.
    /// Not synced here; the next fsync covers it, and after a crash
    /// `EventLog.open` indexes whatever the marks lack. Runs on the writer
    /// thread between commits; a large batch is sorted on another thread
    /// while appends go on (`waitForSort`: this call waits for it).
    func indexStep(waitForSort: Bool = false) {
        if indexJob == nil {
            guard let job = startIndexJob() else { return }
            indexJob = job
        }
        guard var job = indexJob else { return }
        if job.rows == nil {
            guard let rows = job.sorting.take(waiting: waitForSort) else { return }
            job.rows = rows
        }
        guard let rows = job.rows else { return }
        let end = min(rows.count, job.done + max(1, options.indexChunkRows))
        let last = end == rows.count
        let batches = copyIndexBatches
        // Copies stored since the batch began at or below the watermark it
        // sets (a tail loop that went back): the same transaction indexes
        // them, since reads take what is at or below a watermark from the
        // index only.
        let late = last && job.copyCount > 0
            ? copies.pendingEntries.dropFirst(job.copyCount).filter { $0.offset <= job.copyEnds[$0.origin] ?? .min } : []
        do {
            try pool.writeWithoutTransaction { db in
                try Self.inImmediateTransaction(db) {
                    let insert = try db.cachedStatement(sql: #"INSERT OR IGNORE INTO order_index (order_id, version, origin, "offset") VALUES (?, ?, ?, ?)"#)
                    for row in rows[job.done..<end] { try Self.insert(row, using: insert) }
                    guard last else { return }
                    for row in late { try Self.insert(row, using: insert) }
                    if job.ownThrough > job.ownFrom {
                        try EventLog.setIndexedThrough(job.ownThrough, db)
                    }
                    if job.copyCount > 0 {
                        for (copyOrigin, through) in job.copyEnds.sorted(by: { $0.key < $1.key }) {
                            try EventLog.setCopyWatermark(origin: copyOrigin, through, db)
                        }
                        try EventLog.setCopyIndexBatches(batches + 1, db)
                    }
                }
            }
        } catch {
            // What was committed stays in the index (readers count it
            // once); the marks did not move, so the next batch takes it all
            // again, a second from now.
            logger.error("indexing the newest events failed", metadata: ["through": "\(job.ownThrough)", "error": "\(error)"])
            indexRetryAtNs = DispatchTime.now().uptimeNanoseconds + 1_000_000_000
            indexJob = nil
            return
        }
        job.done = end
        guard last else {
            indexJob = job
            return
        }
        indexJob = nil
        if job.ownThrough > job.ownFrom {
            indexedThrough = job.ownThrough
            // Readers whose snapshot still says `ownFrom` need the entries
            // after it: forget only what an older snapshot would ask for.
            tail.indexed(previous: job.ownFrom, count: job.ownCount)
            indexedCounter.increment(by: Int(job.ownThrough - job.ownFrom))
        }
        if job.copyCount > 0 {
            for (copyOrigin, through) in job.copyEnds { copyWatermarks[copyOrigin] = through }
            copyIndexBatches = batches + 1
            copies.indexed(previous: batches, count: job.copyCount)
        }
    }

    /// The next index batch: what waits now, sorted by key; nil when
    /// nothing does.
    private func startIndexJob() -> IndexJob? {
        let through = nextOffset - 1
        let own = through > indexedThrough ? tail.pendingEntries : []
        let copied = copies.pendingEntries
        guard through > indexedThrough || !copied.isEmpty else { return nil }
        var copyEnds: [String: Int64] = [:]
        for entry in copied { copyEnds[entry.origin] = max(copyEnds[entry.origin] ?? 0, entry.offset) }
        // A watermark only moves forward: copies at or below it (indexed
        // with an earlier batch's last chunk, see `late`) go in again and
        // move nothing.
        copyEnds = copyEnds.filter { $0.value > copyWatermarks[$0.key] ?? 0 }
        var rows = own
        // The writer's memory holds every own event after `indexedThrough`
        // (readers by order rely on it); should it ever not, the events
        // table is what counts.
        let inMemory = own.allSatisfy { $0.offset > indexedThrough && $0.offset <= through } && ownComplete(own, through: through)
        if through > indexedThrough && !inMemory {
            logger.error("the writer's memory lacks own events that wait for the index: reading them from the log", metadata: [
                "after": "\(indexedThrough)", "through": "\(through)", "in_memory": "\(own.count)",
            ])
            rows = (try? pool.read { db in try EventLog.ownEntries(origin: origin, after: indexedThrough, through: through, db) }) ?? own
        }
        rows += copied
        let sorting = SortedRows()
        if rows.count <= Self.rowsSortedInPlace {
            Self.sortByKey(&rows)
            sorting.put(rows)
        } else {
            // Sorting 16,384 rows takes several ms: not on the writer's time.
            let unsorted = rows
            DispatchQueue.global(qos: .utility).async {
                var rows = unsorted
                Self.sortByKey(&rows)
                sorting.put(rows)
            }
        }
        return IndexJob(sorting: sorting, ownFrom: indexedThrough, ownThrough: through, ownCount: own.count, copyCount: copied.count, copyEnds: copyEnds)
    }

    /// Whether `own` holds every own event of the log in (`indexedThrough`,
    /// `through`]: as many as the log has there (a log recovered from its
    /// peers may skip offsets, so the count is read, not assumed).
    private func ownComplete(_ own: [UnindexedTail.Entry], through: Int64) -> Bool {
        guard through > indexedThrough else { return true }
        if Int64(own.count) == through - indexedThrough { return true }
        let stored = try? pool.read { db in
            try Int.fetchOne(
                db, sql: #"SELECT count(*) FROM events WHERE origin = ? AND "offset" > ? AND "offset" <= ?"#,
                arguments: [origin, indexedThrough, through])
        }
        return stored.flatMap { $0 } == own.count
    }

    /// Batches up to this many rows are sorted on the writer thread (well
    /// under a ms).
    static let rowsSortedInPlace = 2048

    /// Sorts index rows in the index's key order: order id by its UTF-8
    /// bytes (as SQLite compares text), then version, origin, offset.
    static func sortByKey(_ rows: inout [UnindexedTail.Entry]) {
        rows.sort { a, b in
            let byID = compareBytes(a.orderID, b.orderID)
            if byID != 0 { return byID < 0 }
            if a.version != b.version { return a.version < b.version }
            let byOrigin = compareBytes(a.origin, b.origin)
            if byOrigin != 0 { return byOrigin < 0 }
            return a.offset < b.offset
        }
    }

    /// memcmp of two strings' UTF-8 bytes, the shorter first on a tie.
    static func compareBytes(_ a: String, _ b: String) -> Int {
        let compared = a.utf8.withContiguousStorageIfAvailable { left in
            b.utf8.withContiguousStorageIfAvailable { right -> Int in
                let common = min(left.count, right.count)
                let result = common == 0 ? 0 : memcmp(left.baseAddress!, right.baseAddress!, common)
                return result != 0 ? Int(result) : left.count - right.count
            }
        }
        if let compared = compared ?? nil { return compared }
        if a.utf8.elementsEqual(b.utf8) { return 0 }
        return a.utf8.lexicographicallyPrecedes(b.utf8) ? -1 : 1
    }

    private static func insert(_ row: UnindexedTail.Entry, using statement: Statement) throws {
        let handle = statement.sqliteStatement
        let code = EventRecord.withText(row.orderID) { orderID in
            EventRecord.withText(row.origin) { origin in
                sqlite3_reset(handle)
                EventRecord.bind(handle, 1, orderID)
                sqlite3_bind_int64(handle, 2, row.version)
                EventRecord.bind(handle, 3, origin)
                sqlite3_bind_int64(handle, 4, row.offset)
                let code = sqlite3_step(handle)
                sqlite3_clear_bindings(handle)
                return code
            }
        }
        guard code == SQLITE_DONE else {
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: "adding to order_index failed")
        }
    }
}

/// An index batch under way (see `GroupCommitWriter.indexStep`).
struct IndexJob {
    /// Its rows, sorted on another thread.
    let sorting: SortedRows
    /// Its rows in key order, once sorted.
    var rows: [UnindexedTail.Entry]?
    /// Rows committed so far.
    var done = 0
    /// Own events in (`ownFrom`, `ownThrough`].
    let ownFrom: Int64
    let ownThrough: Int64
    /// The writer's entries it took: the oldest of each tail.
    let ownCount: Int
    let copyCount: Int
    /// Per origin copied, the newest copy it takes.
    let copyEnds: [String: Int64]

    init(sorting: SortedRows, ownFrom: Int64, ownThrough: Int64, ownCount: Int, copyCount: Int, copyEnds: [String: Int64]) {
        self.sorting = sorting
        self.ownFrom = ownFrom
        self.ownThrough = ownThrough
        self.ownCount = ownCount
        self.copyCount = copyCount
        self.copyEnds = copyEnds
    }
}

/// An index batch's rows, handed over by the thread that sorts them.
final class SortedRows: @unchecked Sendable {
    private let condition = NSCondition()
    private var rows: [UnindexedTail.Entry]?

    func put(_ sorted: [UnindexedTail.Entry]) {
        condition.lock()
        rows = sorted
        condition.broadcast()
        condition.unlock()
    }

    /// The sorted rows; nil while they are not ready and `waiting` is false.
    func take(waiting: Bool) -> [UnindexedTail.Entry]? {
        condition.lock()
        defer { condition.unlock() }
        while waiting && rows == nil { condition.wait() }
        return rows
    }
}
