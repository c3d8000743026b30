import Foundation
import GRDB
import LogStorage
import GRDBSQLite
import Logging

/// One node's SQLite event log: `<data>/<node>/log.sqlite` in WAL mode. The
/// node is the only writer of its own log (origin = node id); reads may run
/// concurrently from any task.
public final class EventLog: LogStore, Sendable {
    public let origin: String
    public let path: String
    /// Random id of this log file, fixed at creation. It is part of every
    /// event id, so a node whose data folder was wiped never reuses an id.
    public let logID: String
    /// The newest own offset when the log was opened.
    public let lastOffsetAtOpen: Int64
    let reader: any DatabaseReader
    private let writer: GroupCommitWriter?
    /// The hot reads of a node's own log (see `FastReaders`); nil read-only.
    private let fast: FastReaders?

    /// How many of the newest own events `open` verifies: a torn tail is found
    /// at start-up, at a cost that does not grow with the log.
    static let tailEventsVerifiedAtOpen = 64

    public static func path(data: String, node: String) -> String {
        (data as NSString).appendingPathComponent(node) + "/log.sqlite"
    }

    public var isReadOnly: Bool { writer == nil }

    /// Whether reads of orders this log never held skip SQLite yet (see
    /// `OrderPresence`): once the ids the file held at open are read.
    var orderFilterReady: Bool { writer?.presence.isReady ?? false }

    /// False only when this log certainly holds no event of `orderID`
    /// (always true before the order filter is ready, and read-only).
    func mightHold(_ orderID: String) -> Bool { writer?.presence.mightHold(orderID) ?? true }

    /// False only for a file from before migration 3 opened read-only
    /// (reads by order then scan `events`).
    private let hasOrderIndex: Bool

    private init(
        origin: String, path: String, logID: String, lastOffset: Int64, reader: any DatabaseReader, writer: GroupCommitWriter?,
        hasOrderIndex: Bool = true
    ) {
        self.hasOrderIndex = hasOrderIndex
        self.origin = origin
        self.path = path
        self.logID = logID
        self.lastOffsetAtOpen = lastOffset
        self.reader = reader
        self.writer = writer
        self.fast = writer == nil ? nil : FastReaders(path: path)
    }

    /// Opens (creating if needed) the node's log for writing: applies the
    /// migrations, checks ownership and the tail, starts the writer.
    public static func open(data: String, node: String, options: EventLogOptions = .init(), logger: Logger = Logger(label: "orderly.log")) throws -> EventLog {
        let file = path(data: data, node: node)
        try FileManager.default.createDirectory(
            atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        return try open(path: file, node: node, options: options, logger: logger)
    }

    public static func open(path file: String, node: String, options: EventLogOptions = .init(), logger: Logger = Logger(label: "orderly.log")) throws -> EventLog {
        var configuration = Configuration()
        configuration.label = "orderly-\(node)"
        configuration.busyMode = .timeout(5)
        let pageBytes = options.pageBytes
        configuration.prepareDatabase { db in
            // Takes effect only on a new, empty file (before WAL is on).
            try db.execute(sql: "PRAGMA page_size = \(pageBytes)")
        }
        let pool = try DatabasePool(path: file, configuration: configuration)
        var logID = ""
        var lastOffset: Int64 = 0
        var indexedThrough: Int64 = 0
        var copyWatermarks: [String: Int64] = [:]
        var copyIndexBatches: Int64 = 0
        try pool.writeWithoutTransaction { db in
            // Commits write the WAL without syncing it; with `.fsync` the
            // writer's sync thread fsyncs it before any reply (see
            // GroupCommitWriter). The writer connection is the only one
            // that commits, so this setting governs every commit.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(options.walAutocheckpointPages)")
            // See EventLogOptions.writerCacheKibibytes: bigger is slower.
            try db.execute(sql: "PRAGMA cache_size = -\(options.writerCacheKibibytes)")
            try db.inTransaction(.immediate) {
                try Migrations.apply(db, nowMs: options.clock())
                let owner = try String.fetchOne(db, sql: "SELECT value FROM log_meta WHERE key = 'node'")
                if let owner, owner != node {
                    throw EventLogError.wrongOwner(expected: node, found: owner)
                }
                if let existing = try String.fetchOne(db, sql: "SELECT value FROM log_meta WHERE key = 'log_id'") {
                    logID = existing
                } else {
                    logID = String(UInt64.random(in: 0...UInt64.max), radix: 16)
                    try db.execute(
                        sql: "INSERT INTO log_meta (key, value) VALUES ('node', ?), ('log_id', ?)",
                        arguments: [node, logID])
                }
                lastOffset = try Int64.fetchOne(
                    db, sql: "SELECT MAX(\"offset\") FROM events WHERE origin = ?", arguments: [node]) ?? 0
                // Offsets a lost log used, which its events put back from
                // peers' copies may not reach (see `reimport`).
                let floor = try Int64.fetchOne(db, sql: "SELECT CAST(value AS INTEGER) FROM log_meta WHERE key = 'offset_floor'") ?? 0
                let lastEvent = lastOffset
                lastOffset = max(lastOffset, floor)
                let tail = try Row.fetchAll(
                    db, sql: "SELECT \(EventRecord.columns) FROM events WHERE origin = ? ORDER BY \"offset\" DESC LIMIT ?",
                    arguments: [node, tailEventsVerifiedAtOpen])
                for row in tail { _ = try EventRecord(row: row).verified() }
                // Own events a crash left out of order_index go in now (at
                // most one index batch and what was waiting for it).
                indexedThrough = try Self.indexedThrough(db)
                if lastEvent > indexedThrough {
                    try Self.index(origin: node, after: indexedThrough, through: lastOffset, db)
                    indexedThrough = lastOffset
                }
                // Likewise the copies a crash left out (at most an index
                // batch of them per origin, and gathered ones above it).
                copyWatermarks = try Self.copyWatermarks(db)
                for (copied, watermark) in copyWatermarks {
                    let end = try Int64.fetchOne(db, sql: "SELECT MAX(\"offset\") FROM events WHERE origin = ?", arguments: [copied]) ?? 0
                    if end > watermark {
                        try Self.index(copiesOf: copied, after: watermark, through: end, db)
                        copyWatermarks[copied] = end
                    }
                }
                copyIndexBatches = try Self.copyIndexBatches(db)
                return .commit
            }
        }
        let writer = GroupCommitWriter(
            pool: pool, path: file, origin: node, logID: logID, lastOffset: lastOffset, indexedThrough: indexedThrough,
            copyWatermarks: copyWatermarks, copyIndexBatches: copyIndexBatches, options: options, logger: logger)
        try writer.start()
        writer.presence.fill(from: pool, logger: logger)
        logger.info("event log open", metadata: ["node": "\(node)", "path": "\(file)", "last_offset": "\(lastOffset)"])
        return EventLog(origin: node, path: file, logID: logID, lastOffset: lastOffset, reader: pool, writer: writer)
    }

    /// How much of a file a read-only connection maps (SQLite caps it at its
    /// compile-time maximum).
    static let readOnlyMapBytes: Int64 = 1 << 32

    /// Opens a log file read-only, for inspection while its node may run.
    public static func openReadOnly(path file: String) throws -> EventLog {
        guard FileManager.default.fileExists(atPath: file) else {
            throw EventLogError.noLogFile(path: file)
        }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            // Long reads (a rebuild, a scan) map the file instead of copying
            // every page through read(2). Read-only: a fault in the mapping
            // cannot damage the file.
            try db.execute(sql: "PRAGMA mmap_size = \(readOnlyMapBytes)")
        }
        let queue = try DatabaseQueue(path: file, configuration: configuration)
        let (node, logID, last, hasOrderIndex) = try queue.read { db -> (String, String, Int64, Bool) in
            let node = try String.fetchOne(db, sql: "SELECT value FROM log_meta WHERE key = 'node'") ?? ""
            let logID = try String.fetchOne(db, sql: "SELECT value FROM log_meta WHERE key = 'log_id'") ?? ""
            let last = try Int64.fetchOne(db, sql: "SELECT MAX(\"offset\") FROM events WHERE origin = ?", arguments: [node]) ?? 0
            return (node, logID, last, try db.tableExists("order_index"))
        }
        return EventLog(origin: node, path: file, logID: logID, lastOffset: last, reader: queue, writer: nil, hasOrderIndex: hasOrderIndex)
    }

    static func eventID(origin: String, logID: String, offset: Int64) -> String {
        EventID.make(origin: origin, logID: logID, offset: offset)
    }

    static func eventID(_ eventID: String, spells origin: String, offset: Int64) -> Bool {
        EventID.spells(eventID, origin: origin, offset: offset)
    }

    static func eventID(prefix: String, offset: Int64) -> String {
        EventID.make(prefix: prefix, offset: offset)
    }

    // MARK: Writing

    /// Appends atomically; returns the stored records once they are durable
    /// per the durability setting. MUST NOT be called on a read-only log.
    public func append(_ request: AppendRequest) async throws -> [EventRecord] {
        guard let writer else { throw EventLogError.closed }
        try request.validate()
        return try await writer.append(request)
    }

    /// Returns once every append and copy queued before the call is
    /// committed (and durable per the durability setting).
    public func barrier() async throws {
        guard let writer else { throw EventLogError.closed }
        try await writer.barrier()
    }

    /// Stores copies of other nodes' events, verified first: a corrupt or
    /// misaddressed copy is refused whole and changes nothing. Events with an
    /// origin other than `batch.origin` are allowed only without a position
    /// (an order's events gathered from a replica span several origins).
    /// Returns how many events were new here.
    public func replicate(_ batch: ReplicatedBatch) async throws -> Int {
        guard let writer else { throw EventLogError.closed }
        try batch.validate(own: origin)
        if batch.events.isEmpty && batch.throughOffset == nil && batch.deadlines.isEmpty { return 0 }
        return try await writer.replicate(batch)
    }

    /// The terms this node has granted (`term_promises`).
    public func promises() async throws -> [Promise] {
        try checkReadable()
        return try await reader.read { db in
            try Row.fetchAll(db, sql: "SELECT group_key, term, leader FROM term_promises ORDER BY group_key").map {
                Promise(group: $0[0], term: $0[1], leader: $0[2])
            }
        }
    }

    /// The ring members this node last recorded (`ring_members`).
    public func ringMembers() async throws -> [String: Bool] {
        try checkReadable()
        return try await reader.read { db in
            var members: [String: Bool] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT node, left FROM ring_members") {
                members[row[0] as String] = (row[1] as Int64) != 0
            }
            return members
        }
    }

    public func departedLogsRead() async throws -> Set<DepartedLogRead> {
        try checkReadable()
        return try await reader.read { db in
            var reads: Set<DepartedLogRead> = []
            for row in try Row.fetchAll(db, sql: "SELECT origin, incarnation, ring FROM departed_logs_read") {
                let ring = (row[2] as String).split(separator: ",").map(String.init)
                reads.insert(DepartedLogRead(origin: row[0], incarnation: UInt64(clamping: row[1] as Int64), ring: ring))
            }
            return reads
        }
    }

    public func reimport(_ events: [EventRecord], floor: Int64) async throws -> Int {
        guard let writer else { throw EventLogError.closed }
        try ReplicatedBatch.validateOwn(events, own: origin)
        return try await writer.replicate(ReplicatedBatch(origin: origin, events: events, throughOffset: nil, reimportFloor: max(floor, 0)))
    }

    /// How far this file holds each origin it copies (`replica_positions`).
    public func replicaPositions() async throws -> [String: Int64] {
        try checkReadable()
        return try await reader.read { db in
            var positions: [String: Int64] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT origin, through_offset FROM replica_positions") {
                positions[row[0]] = row[1]
            }
            return positions
        }
    }

    public func heldOffsets() async throws -> [String: Int64] {
        try checkReadable()
        return try await reader.read { db in
            // One index probe per origin (the key is origin, offset), not a
            // scan of the table.
            var held: [String: Int64] = [:]
            var origin = try String.fetchOne(db, sql: "SELECT origin FROM events ORDER BY origin LIMIT 1")
            while let current = origin {
                held[current] = try Int64.fetchOne(db, sql: #"SELECT MAX("offset") FROM events WHERE origin = ?"#, arguments: [current])
                origin = try String.fetchOne(db, sql: "SELECT origin FROM events WHERE origin > ? ORDER BY origin LIMIT 1", arguments: [current])
            }
            return held
        }
    }

    /// The failed fsync that stopped the writer: from then on the log takes
    /// no write and answers no read (what it holds may never reach the
    /// disk); the node must be restarted to recover from its file.
    public var failure: EventLogError? { writer?.failure }

    /// Throws the writer's failure: reads of a log whose fsync failed may
    /// return commits that will never be durable.
    private func checkReadable() throws {
        if let failure = writer?.failure { throw failure }
    }

    /// Newest committed offset of this node's own log.
    public var committedOffset: Int64 { writer?.committedOffset ?? lastOffsetAtOpen }

    /// Calls `body` with the newest own offset after every commit that
    /// appended own events, once they are durable. `body` runs on the log's sync
    /// thread: keep it short.
    public func onCommit(_ body: @escaping @Sendable (Int64) -> Void) {
        writer?.onCommit(body)
    }

    /// Transactions committed by this process's writer and the events in
    /// them: their ratio is the mean group-commit batch.
    public var writerStatistics: (commits: Int, events: Int, writerCPUSeconds: Double) {
        writer?.statistics ?? (0, 0, 0)
    }

    /// Times the writer's sync thread fsynced the WAL (0 when SQLite syncs
    /// inside each commit, or with `.relaxed`).
    public var walSyncs: Int { writer?.walSyncs ?? 0 }

    /// Lets queued appends finish, then stops the writer. Reads keep working.
    public func close() {
        writer?.stop()
        fast?.close()
    }

    /// `unindexed`: the order's events past the index's marks (some may be
    /// in `order_index` already: an index batch under way).
    static func upsert(_ checkpoint: Checkpoint, writtenAt: Int64, in db: Database, unindexed: [UnindexedTail.Entry]) throws {
        if let covered = checkpoint.coveredEvents {
            let rows = try db.cachedStatement(sql: #"SELECT origin, "offset" FROM order_index WHERE order_id = ? AND version <= ?"#)
            var held = Set<IndexKey>()
            for row in try Row.fetchAll(rows, arguments: [checkpoint.orderID, checkpoint.version]) {
                held.insert(IndexKey(origin: row[0], offset: row[1]))
            }
            for entry in unindexed where entry.version <= checkpoint.version {
                held.insert(IndexKey(origin: entry.origin, offset: entry.offset))
            }
            guard held.count == covered else { return }
        }
        // A late checkpoint from an old activation never replaces a newer one.
        let statement = try db.cachedStatement(sql: """
            INSERT INTO checkpoints (order_id, version, state, written_at, checksum) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT(order_id) DO UPDATE SET version = excluded.version, state = excluded.state,
                written_at = excluded.written_at, checksum = excluded.checksum
            WHERE excluded.version > checkpoints.version
            """)
        try statement.execute(arguments: [checkpoint.orderID, checkpoint.version, checkpoint.state, writtenAt, Int64(checkpoint.checksum)])
    }

    // MARK: Reading

    /// The order's newest checkpoint, verified.
    public func checkpoint(orderID: String) async throws -> Checkpoint? {
        try checkReadable()
        guard mightHold(orderID) else { return nil }
        if let fast { return try fast.read { try Self.checkpoint(orderID: orderID, $0) } }
        return try readHere { db in try Self.checkpoint(orderID: orderID, db) }
    }

    /// The order's events after `afterVersion`, in version order, verified.
    public func events(orderID: String, afterVersion: Int64 = 0) async throws -> [EventRecord] {
        try checkReadable()
        if let fast, let writer {
            guard mightHold(orderID) else { return [] }
            return try readOrderFast(fast) { reader in
                try Self.orderEvents(orderID: orderID, afterVersion: afterVersion, reader, writer)?.map { try $0.verified() }
            }
        }
        return try await readOrder { db in
            try self.orderEvents(orderID: orderID, afterVersion: afterVersion, db)?.map { try $0.verified() }
        }
    }

    /// The checkpoint and the events after it, read in one snapshot.
    public func load(orderID: String) async throws -> (checkpoint: Checkpoint?, events: [EventRecord]) {
        try checkReadable()
        if let fast, let writer {
            // An order this log never held (a new order): nothing to read
            // (see `OrderPresence`).
            guard mightHold(orderID) else { return (nil, []) }
            return try readOrderFast(fast) { reader in
                let checkpoint = try Self.checkpoint(orderID: orderID, reader)
                guard let events = try Self.orderEvents(orderID: orderID, afterVersion: checkpoint?.version ?? 0, reader, writer) else { return nil }
                return (checkpoint, try events.map { try $0.verified() })
            }
        }
        return try await readOrder { db in
            let checkpoint = try Self.checkpoint(orderID: orderID, db)
            guard let events = try self.orderEvents(orderID: orderID, afterVersion: checkpoint?.version ?? 0, db) else { return nil }
            return (checkpoint, try events.map { try $0.verified() })
        }
    }

    /// `readOrder` on the log's own connections.
    private func readOrderFast<T>(_ fast: FastReaders, _ body: (FastReader) throws -> T?) throws -> T {
        for _ in 0..<100 {
            if let value = try fast.read(body) { return value }
        }
        throw EventLogError.invalidAppend("reads by order kept finding the unindexed events dropped; this is a bug")
    }

    /// Runs a read by order in a snapshot; again in a newer one when the
    /// writer no longer holds the unindexed entries that snapshot needs
    /// (it began before the last two index batches).
    private func readOrder<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T?) async throws -> T {
        // A fresh snapshot is never too old: one retry is the rule.
        for _ in 0..<100 {
            if let value = try readHere(body) { return value }
        }
        throw EventLogError.invalidAppend("reads by order kept finding the unindexed events dropped; this is a bug")
    }

    /// A short read on the calling thread. An order's events are a few
    /// pages from the page cache: reading them here costs less than the two
    /// thread hops of GRDB's async read (to a reader queue and back), which
    /// were most of an activation's time.
    private func readHere<T>(_ body: (Database) throws -> T) throws -> T {
        try reader.read(body)
    }

    /// The order's events after `afterVersion` in this snapshot, in
    /// version order, not verified: the indexed ones from `order_index`,
    /// then this node's own events after the snapshot's `indexed_through`,
    /// found through the writer's memory or, for a read-only log, by
    /// scanning the log from there (the `order_events` view does the same).
    /// Nil when the writer dropped entries this snapshot needs.
    ///
    /// With a writer, own events it has not synced yet are left out: they
    /// are not acknowledged, and a power cut could take them back after a
    /// peer copied them.
    private func orderEvents(orderID: String, afterVersion: Int64, _ db: Database) throws -> [EventRecord]? {
        guard hasOrderIndex else {
            // A file from before migration 3, opened read-only.
            let statement = try db.cachedStatement(
                sql: "SELECT \(EventRecord.columns) FROM events WHERE order_id = ? AND version > ? ORDER BY version, origin, \"offset\"")
            return try Row.fetchAll(statement, arguments: [orderID, afterVersion]).map(EventRecord.init(row:))
        }
        // A read-only open (a node's own log reads through `FastReaders`):
        // what the index lacks is found by scanning the log after each
        // watermark, a few index batches at most.
        let indexedThrough = try Self.indexedThrough(db)
        let indexed = try db.cachedStatement(sql: Self.indexedEventsSQL)
        var records = try Row.fetchAll(indexed, arguments: [orderID, afterVersion]).map(EventRecord.init(row:))
        let indexedCount = records.count
        let scan = try db.cachedStatement(sql: Self.unindexedScanSQL)
        // Gathered copies above a watermark are in the index as well, and
        // so are the events of an index batch's chunks committed before it
        // moved the marks.
        let seen = Set(records.lazy.map { IndexKey(origin: $0.origin, offset: $0.offset) })
        for (logOrigin, watermark) in [(origin, indexedThrough)] + (try Self.copyWatermarks(db)).sorted(by: { $0.key < $1.key }) {
            records += try Row.fetchAll(scan, arguments: [logOrigin, watermark, orderID, afterVersion]).map(EventRecord.init(row:))
                .filter { !seen.contains(IndexKey(origin: $0.origin, offset: $0.offset)) }
        }
        return Self.ordered(records, indexed: indexedCount, origin: origin, durableThrough: nil)
    }

    /// The indexed events then the tail's, in canonical order, without own
    /// events beyond `durableThrough`.
    private static func ordered(_ records: [EventRecord], indexed: Int, origin: String, durableThrough: Int64?) -> [EventRecord] {
        var records = records
        if records.count > indexed {
            records.sort { ($0.version, $0.origin, $0.offset) < ($1.version, $1.origin, $1.offset) }
        }
        if let durableThrough {
            records.removeAll { $0.origin == origin && $0.offset > durableThrough }
        }
        return records
    }

    static let indexedEventsSQL = """
        SELECT \(EventRecord.columns(prefix: "e.")) FROM order_index i
        JOIN events e ON e.origin = i.origin AND e."offset" = i."offset"
        WHERE i.order_id = ? AND i.version > ?
        ORDER BY i.version, i.origin, i."offset"
        """
    static let eventByOffsetSQL = "SELECT \(EventRecord.columns) FROM events WHERE origin = ? AND \"offset\" = ?"
    static let unindexedScanSQL = "SELECT \(EventRecord.columns) FROM events WHERE origin = ? AND \"offset\" > ? AND order_id = ? AND version > ?"
    static let indexedThroughSQL = "SELECT CAST(value AS INTEGER) FROM log_meta WHERE key = 'indexed_through'"
    static let checkpointSQL = "SELECT order_id, version, state, written_at, checksum FROM checkpoints WHERE order_id = ?"
    static let scanSQL = "SELECT \(EventRecord.columns) FROM events WHERE origin = ? AND \"offset\" >= ? ORDER BY \"offset\" LIMIT ?"

    /// `orderEvents` on one of the log's own connections (a node's log,
    /// with its writer's tail).
    private static func orderEvents(orderID: String, afterVersion: Int64, _ reader: FastReader, _ writer: GroupCommitWriter) throws -> [EventRecord]? {
        let durableThrough = writer.committedOffset
        // The snapshot's marks, in one read: `indexed_through`, each
        // origin's copy watermark and the number of copy index batches.
        var indexedThrough: Int64 = 0
        var batches: Int64 = 0
        var watermarks: [String: Int64] = [:]
        for (key, value) in try reader.rows(reader.statement(indexMarksSQL), bind: { _ in }, {
            (FastReader.text($0, 0), sqlite3_column_int64($0, 1))
        }) {
            if key == "indexed_through" {
                indexedThrough = value
            } else if key == "copies_indexed_batches" {
                batches = value
            } else {
                watermarks[String(key.dropFirst(copyWatermarkPrefix.count))] = value
            }
        }
        var records = try reader.rows(reader.statement(indexedEventsSQL), bind: {
            FastReader.bind($0, 1, orderID)
            sqlite3_bind_int64($0, 2, afterVersion)
        }, FastReader.record)
        let indexedCount = records.count
        guard var entries = writer.tail.entries(orderID: orderID, after: indexedThrough) else { return nil }
        if !watermarks.isEmpty {
            // Copies the snapshot's index lacks: above their origin's
            // watermark, in the writer's memory (nil when the writer has
            // indexed past this snapshot and forgotten them since).
            guard let copied = writer.copies.entries(orderID: orderID, mark: batches, { $0.offset > (watermarks[$0.origin] ?? 0) }) else { return nil }
            entries += copied
        }
        if !entries.isEmpty && indexedCount > 0 {
            // An index batch under way commits its chunks before it moves
            // the marks: an entry may be in this snapshot's index already.
            let indexed = Set(records.lazy.map { IndexKey(origin: $0.origin, offset: $0.offset) })
            entries.removeAll { indexed.contains(IndexKey(origin: $0.origin, offset: $0.offset)) }
        }
        let byOffset = try reader.statement(eventByOffsetSQL)
        for entry in entries where entry.version > afterVersion {
            // Not in this snapshot when written after it began.
            records += try reader.rows(byOffset, bind: {
                FastReader.bind($0, 1, entry.origin)
                sqlite3_bind_int64($0, 2, entry.offset)
            }, FastReader.record)
        }
        return ordered(records, indexed: indexedCount, origin: writer.origin, durableThrough: durableThrough)
    }

    private static func checkpoint(orderID: String, _ reader: FastReader) throws -> Checkpoint? {
        let rows = try reader.rows(reader.statement(checkpointSQL), bind: { FastReader.bind($0, 1, orderID) }) { statement in
            (Checkpoint(
                orderID: FastReader.text(statement, 0), version: sqlite3_column_int64(statement, 1), state: FastReader.text(statement, 2),
                writtenAt: sqlite3_column_int64(statement, 3)), sqlite3_column_int64(statement, 4))
        }
        guard let (checkpoint, stored) = rows.first else { return nil }
        guard UInt32(truncatingIfNeeded: stored) == checkpoint.checksum else {
            throw EventLogError.corruptCheckpoint(orderID: orderID)
        }
        return checkpoint
    }

    /// Adds `origin`'s events in (`after`, `through`] to `order_index` in
    /// key order and moves `indexed_through` to `through`.
    static func index(origin: String, after: Int64, through: Int64, _ db: Database) throws {
        try indexRange(of: origin, after: after, through: through, db)
        try setIndexedThrough(through, db)
    }

    /// Adds `origin`'s events in (`after`, `through`] to `order_index`, in
    /// key order (SQLite sorts them as it reads them back).
    private static func indexRange(of origin: String, after: Int64, through: Int64, _ db: Database) throws {
        try db.cachedStatement(sql: """
            INSERT OR IGNORE INTO order_index (order_id, version, origin, "offset")
            SELECT order_id, version, origin, "offset" FROM events
            WHERE origin = ? AND "offset" > ? AND "offset" <= ?
            ORDER BY order_id, version, origin, "offset"
            """).execute(arguments: [origin, after, through])
    }

    static func setIndexedThrough(_ through: Int64, _ db: Database) throws {
        try db.cachedStatement(sql: "INSERT INTO log_meta (key, value) VALUES ('indexed_through', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .execute(arguments: [through])
    }

    static func setCopyWatermark(origin: String, _ through: Int64, _ db: Database) throws {
        try db.cachedStatement(sql: "INSERT INTO log_meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .execute(arguments: [copyWatermarkPrefix + origin, through])
    }

    /// `origin`'s events in (`after`, `through`] as index rows.
    static func ownEntries(origin: String, after: Int64, through: Int64, _ db: Database) throws -> [UnindexedTail.Entry] {
        try Row.fetchAll(
            db, sql: #"SELECT order_id, version, origin, "offset" FROM events WHERE origin = ? AND "offset" > ? AND "offset" <= ?"#,
            arguments: [origin, after, through]
        ).map { UnindexedTail.Entry(orderID: $0[0], version: $0[1], origin: $0[2], offset: $0[3]) }
    }

    /// Adds the copies of `origin`'s log in (`after`, `through`] to
    /// `order_index` in key order and moves that origin's watermark.
    static func index(copiesOf origin: String, after: Int64, through: Int64, _ db: Database) throws {
        try indexRange(of: origin, after: after, through: through, db)
        try setCopyWatermark(origin: origin, through, db)
    }

    /// The first copies of an origin that go to the index in the
    /// background: those at or below `offset` are indexed already.
    static func startCopyWatermark(origin: String, at offset: Int64, _ db: Database) throws {
        try db.cachedStatement(sql: "INSERT OR IGNORE INTO log_meta (key, value) VALUES (?, ?)").execute(arguments: [copyWatermarkPrefix + origin, offset])
    }

    static func setCopyIndexBatches(_ batches: Int64, _ db: Database) throws {
        try db.cachedStatement(sql: "INSERT INTO log_meta (key, value) VALUES ('copies_indexed_batches', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .execute(arguments: [batches])
    }

    /// `indexed_through:ORIGIN`: copies of ORIGIN's log at or below it are
    /// in `order_index`; above it, only those gathered or backfilled.
    static let copyWatermarkPrefix = "indexed_through:"
    static let copyWatermarksSQL =
        "SELECT substr(key, \(copyWatermarkPrefix.count + 1)), CAST(value AS INTEGER) FROM log_meta WHERE key GLOB '\(copyWatermarkPrefix)*'"
    static let copyIndexBatchesSQL = "SELECT CAST(value AS INTEGER) FROM log_meta WHERE key = 'copies_indexed_batches'"
    static let indexMarksSQL = """
        SELECT key, CAST(value AS INTEGER) FROM log_meta
        WHERE key = 'indexed_through' OR key GLOB '\(copyWatermarkPrefix)*' OR key = 'copies_indexed_batches'
        """

    static func copyWatermarks(_ db: Database) throws -> [String: Int64] {
        var watermarks: [String: Int64] = [:]
        for row in try Row.fetchAll(db.cachedStatement(sql: copyWatermarksSQL)) { watermarks[row[0]] = row[1] }
        return watermarks
    }

    static func copyIndexBatches(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db.cachedStatement(sql: copyIndexBatchesSQL)) ?? 0
    }

    static func indexedThrough(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db.cachedStatement(sql: indexedThroughSQL)) ?? 0
    }

    /// Events of one origin from `fromOffset` on, verified; a corrupt row
    /// stops the scan with its position.
    public func scan(origin: String? = nil, fromOffset: Int64 = 1, limit: Int = 1000) async throws -> [EventRecord] {
        try await scanUnverified(origin: origin, fromOffset: fromOffset, limit: limit).map { try $0.verified() }
    }

    /// Newest offset of an origin in this file (0 when none).
    public func lastOffset(origin: String? = nil) async throws -> Int64 {
        let origin = origin ?? self.origin
        return try await reader.read { db in
            try Int64.fetchOne(db, sql: "SELECT MAX(\"offset\") FROM events WHERE origin = ?", arguments: [origin]) ?? 0
        }
    }

    /// Origins present in this file with their newest offsets.
    public func origins() async throws -> [(origin: String, lastOffset: Int64)] {
        try await reader.read { db in
            try Row.fetchAll(db, sql: "SELECT origin, MAX(\"offset\") FROM events GROUP BY origin ORDER BY origin").map {
                (origin: $0[0], lastOffset: $0[1])
            }
        }
    }

    /// Pending timers, soonest first.
    public func deadlines(limit: Int = 100_000) async throws -> [(orderID: String, dueAt: Int64)] {
        try checkReadable()
        return try await reader.read { db in
            try Row.fetchAll(db, sql: "SELECT order_id, due_at FROM deadlines ORDER BY due_at LIMIT ?", arguments: [limit]).map {
                (orderID: $0[0], dueAt: $0[1])
            }
        }
    }

    private static func checkpoint(orderID: String, _ db: Database) throws -> Checkpoint? {
        // Cached: activation runs these for every order it loads, and
        // preparing a statement costs more than running it.
        let statement = try db.cachedStatement(sql: checkpointSQL)
        guard let row = try Row.fetchOne(statement, arguments: [orderID]) else { return nil }
        let checkpoint = Checkpoint(orderID: row[0], version: row[1], state: row[2], writtenAt: row[3])
        let stored: Int64 = row[4]
        guard UInt32(truncatingIfNeeded: stored) == checkpoint.checksum else {
            throw EventLogError.corruptCheckpoint(orderID: orderID)
        }
        return checkpoint
    }

}

// MARK: Inspection

extension EventLog {
    /// Like `scan`, but returns corrupt rows too (check `isIntact`), so a
    /// tool can show them at their position instead of stopping.
    public func scanUnverified(origin: String? = nil, fromOffset: Int64 = 1, limit: Int = 1000) async throws -> [EventRecord] {
        try checkReadable()
        let origin = origin ?? self.origin
        // Followers' fetches read here, many a second: the newest own events
        // from memory, the rest on the calling thread, through a prepared
        // statement.
        if origin == self.origin, let writer, let recent = writer.recentOwn.events(fromOffset: fromOffset, limit: limit) {
            return recent
        }
        if let fast {
            return try fast.read { reader in
                try reader.rows(reader.statement(Self.scanSQL), bind: {
                    FastReader.bind($0, 1, origin)
                    sqlite3_bind_int64($0, 2, fromOffset)
                    sqlite3_bind_int64($0, 3, Int64(limit))
                }, FastReader.record)
            }
        }
        return try readHere { db in
            try Row.fetchAll(db.cachedStatement(sql: Self.scanSQL), arguments: [origin, fromOffset, limit]).map(EventRecord.init(row:))
        }
    }

    /// Steps every row of `events` and reads every column of it as SQLite
    /// holds it (text as bytes, no String made), and nothing more: no
    /// checksum, no decoding. The floor any reader of the file pays.
    /// Returns the rows and the bytes of text read.
    public func rawScan() async throws -> (rows: Int, bytes: Int) {
        try await reader.read { db in
            let statement = try db.makeStatement(sql: "SELECT \(EventRecord.columns) FROM events")
            let handle = statement.sqliteStatement
            let columns = sqlite3_column_count(handle)
            var rows = 0
            var bytes = 0
            var sum: UInt64 = 0
            while true {
                let code = sqlite3_step(handle)
                if code == SQLITE_DONE { break }
                guard code == SQLITE_ROW else {
                    throw DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
                }
                rows += 1
                for column in 0..<columns {
                    if sqlite3_column_type(handle, column) == SQLITE_TEXT {
                        // Touch the text, so the scan pays for reading it.
                        let count = Int(sqlite3_column_bytes(handle, column))
                        if let text = sqlite3_column_text(handle, column), count > 0 { sum &+= UInt64(text[0]) &+ UInt64(text[count - 1]) }
                        bytes += count
                    } else {
                        sum &+= UInt64(bitPattern: sqlite3_column_int64(handle, column))
                    }
                }
            }
            withExtendedLifetime(sum) {}
            return (rows, bytes)
        }
    }

    /// Every event of an order, corrupt ones included (check `isIntact`).
    public func eventsUnverified(orderID: String) async throws -> [EventRecord] {
        try await readOrder { db in try self.orderEvents(orderID: orderID, afterVersion: 0, db) }
    }
}

/// Where an event is: its log and offset.
struct IndexKey: Hashable {
    let origin: String
    let offset: Int64
}
