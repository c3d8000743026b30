import Foundation
import GRDB
import TestSupport
import Testing

@testable import EventLog

/// The order index is written in the background: reads by order must see
/// every event whether it is in `order_index` yet or not, from the node,
/// from a read-only open and through the SQL views, and a crash before the
/// index caught up must be repaired at open.
///
/// One test at a time: run side by side with every other suite at the
/// start of `swift test`, this suite's SQLite logs (a few descriptors each)
/// took the test process near the ~1,350 open descriptors at which Swift
/// 6.3's `Process.run()` crashes (see the README).
@Suite(.serialized) struct OrderIndexTests {
    func event(_ order: String, _ version: Int64) -> NewEvent {
        NewEvent(orderID: order, version: version, type: "PaymentReceived", payload: #"{"v":\#(version)}"#)
    }

    /// Indexes every 50 own events and never when idle.
    func options(batch: Int = 50) -> EventLogOptions {
        var options = EventLogOptions()
        options.indexBatchEvents = batch
        options.indexIdleDelaySeconds = 3600
        return options
    }

    func meta(_ file: String) async throws -> (indexed: Int64, entries: Int) {
        let queue = try DatabaseQueue(path: file, configuration: { var c = Configuration(); c.readonly = true; return c }())
        return try await queue.read { db in
            (try Int64.fetchOne(db, sql: "SELECT CAST(value AS INTEGER) FROM log_meta WHERE key = 'indexed_through'") ?? -1,
             try Int.fetchOne(db, sql: "SELECT count(*) FROM order_index") ?? -1)
        }
    }

    @Test func readsByOrderSeeEveryEventWhetherItIsIndexedOrNot() async throws {
        let folder = try TemporaryFolder()
        let log = try EventLog.open(data: folder.path, node: "api-1", options: options())
        let orders = (0..<10).map { "o\($0)" }
        for version in 1...13 {
            for order in orders { _ = try await log.append(AppendRequest(events: [event(order, Int64(version))])) }
        }
        // 130 events: 100 indexed in two batches, 30 in the writer's memory.
        let before = try await meta(log.path)
        #expect(before.indexed == 100)
        #expect(before.entries == 100)

        for order in orders {
            let events = try await log.events(orderID: order)
            #expect(events.map(\.version) == Array(1...13), "\(order)")
            #expect(events.allSatisfy { $0.orderID == order && $0.isIntact })
            #expect(try await log.events(orderID: order, afterVersion: 11).map(\.version) == [12, 13])
        }
        // The checkpoint guard counts the unindexed events too.
        _ = try await log.append(AppendRequest(events: [], checkpoint: Checkpoint(orderID: "o3", version: 13, state: "s12", coveredEvents: 12)))
        #expect(try await log.checkpoint(orderID: "o3") == nil)
        _ = try await log.append(AppendRequest(events: [], checkpoint: Checkpoint(orderID: "o3", version: 13, state: "s13", coveredEvents: 13)))
        #expect(try await log.checkpoint(orderID: "o3")?.state == "s13")

        // A read-only open (inspect) finds the unindexed ones by scanning.
        let reader = try EventLog.openReadOnly(path: log.path)
        for order in orders {
            #expect(try await reader.events(orderID: order).map(\.offset) == log.events(orderID: order).map(\.offset))
        }
        // So do the views people query with sqlite3.
        let queue = try DatabaseQueue(path: log.path, configuration: { var c = Configuration(); c.readonly = true; return c }())
        let perOrder = try await queue.read { db in
            try Int.fetchAll(db, sql: "SELECT count(*) FROM order_timeline WHERE order_id IN ('o0', 'o9') GROUP BY order_id")
        }
        #expect(perOrder == [13, 13])

        // A clean stop indexes the rest.
        log.close()
        let after = try await meta(log.path)
        #expect(after.indexed == 130)
        #expect(after.entries == 130)
    }

    @Test func aCrashBeforeTheIndexCaughtUpIsRepairedAtOpen() async throws {
        let folder = try TemporaryFolder()
        let log = try EventLog.open(data: folder.path, node: "api-1", options: options(batch: 10_000))
        defer { log.close() }
        for version in 1...20 {
            for order in ["a", "b"] { _ = try await log.append(AppendRequest(events: [event(order, Int64(version))])) }
        }
        // The files as a crash would leave them: every append answered,
        // none indexed.
        let crashed = try TemporaryFolder()
        let copy = EventLog.path(data: crashed.path, node: "api-1")
        try FileManager.default.createDirectory(atPath: (copy as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        for suffix in ["", "-wal"] { try FileManager.default.copyItem(atPath: log.path + suffix, toPath: copy + suffix) }
        #expect(try await meta(copy).entries == 0)

        let reopened = try EventLog.open(data: crashed.path, node: "api-1", options: options(batch: 10_000))
        defer { reopened.close() }
        let repaired = try await meta(copy)
        #expect(repaired.indexed == 40)
        #expect(repaired.entries == 40)
        #expect(try await reopened.events(orderID: "a").map(\.version) == Array(1...20))
        #expect(try await reopened.events(orderID: "b").count == 20)
        let next = try await reopened.append(AppendRequest(events: [event("a", 21)]))
        #expect(next[0].offset == 41)
        #expect(try await reopened.events(orderID: "a").last?.version == 21)
    }

    @Test func aFileFromBeforeTheOrderIndexIsReadThenMigrated() async throws {
        // A log written by a release with only migrations 1 and 2.
        let folder = try TemporaryFolder()
        let file = EventLog.path(data: folder.path, node: "api-1")
        try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let old = try DatabaseQueue(path: file)
        try await old.write { db in
            try Migrations.apply(db, migrations: Array(Migrations.all.prefix(2)), nowMs: 0)
            try db.execute(sql: "INSERT INTO log_meta (key, value) VALUES ('node', 'api-1'), ('log_id', 'ab12')")
            let insert = try db.cachedStatement(sql: EventRecord.insertSQL)
            for offset in Int64(1)...6 {
                let order = offset % 2 == 0 ? "even" : "odd"
                try EventRecord(
                    origin: "api-1", offset: offset, orderID: order, version: (offset + 1) / 2, type: "PaymentReceived", payload: "{}",
                    eventID: EventLog.eventID(origin: "api-1", logID: "ab12", offset: offset), recordedAt: 1
                ).insert(using: insert, db)
            }
        }
        try old.close()

        // inspect, read-only: no order_index yet.
        let reader = try EventLog.openReadOnly(path: file)
        #expect(try await reader.events(orderID: "even").map(\.offset) == [2, 4, 6])

        // The node's next start migrates: every event is indexed.
        let log = try EventLog.open(data: folder.path, node: "api-1")
        defer { log.close() }
        #expect(try await meta(file) == (indexed: 6, entries: 6))
        #expect(try await log.events(orderID: "odd").map(\.offset) == [1, 3, 5])
        let next = try await log.append(AppendRequest(events: [event("odd", 4)]))
        #expect(try await log.events(orderID: "odd").map(\.offset) == [1, 3, 5, next[0].offset])
        // Migration 0004 rebuilt `events` without the event_id index, kept
        // every row and made the views again.
        let after = try DatabaseQueue(path: file)
        defer { try? after.close() }
        let (indexes, rows, timeline, origins) = try await after.read { db in
            (
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM pragma_index_list('events') WHERE origin = 'u'") ?? -1,
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM events") ?? -1,
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM order_timeline") ?? -1,
                try Int.fetchOne(db, sql: "SELECT events FROM log_origins WHERE origin = 'api-1'") ?? -1
            )
        }
        #expect(indexes == 0)
        #expect(rows == 7 && timeline == 7 && origins == 7)
    }

    /// `api-1`'s own events, to offer to a follower as copies.
    func origin(_ data: String, orders: [String], versions: ClosedRange<Int64>) async throws -> [EventRecord] {
        let log = try EventLog.open(data: data, node: "api-1", options: options())
        defer { log.close() }
        var written: [EventRecord] = []
        for version in versions {
            for order in orders { written += try await log.append(AppendRequest(events: [event(order, version)])) }
        }
        return written
    }

    func indexedCopies(_ file: String) async throws -> (entries: Int, watermark: Int64?, timeline: Int) {
        let queue = try DatabaseQueue(path: file, configuration: { var c = Configuration(); c.readonly = true; return c }())
        return try await queue.read { db in
            (try Int.fetchOne(db, sql: "SELECT count(*) FROM order_index WHERE origin = 'api-1'") ?? -1,
             try Int64.fetchOne(db, sql: "SELECT CAST(value AS INTEGER) FROM log_meta WHERE key = 'indexed_through:api-1'"),
             try Int.fetchOne(db, sql: "SELECT count(*) FROM order_timeline WHERE origin = 'api-1'") ?? -1)
        }
    }

    /// A follower's tail loop stores copies in offset order: they go to the
    /// index in the background like own events, and every read sees each
    /// once meanwhile; gathered copies (any offset) are indexed at once.
    @Test func copiesFromATailLoopAreIndexedInTheBackgroundAndReadOnceMeanwhile() async throws {
        let folder = try TemporaryFolder()
        let orders = (0..<5).map { "o\($0)" }
        let written = try await origin(folder.path, orders: orders, versions: 1...12)  // offsets 1...60
        let follower = try EventLog.open(data: folder.path, node: "api-2", options: options(batch: 50))
        // The tail loop: offsets 1...40 in two batches, then a gathered copy
        // from further on (offset 55), then the loop again up to 48.
        _ = try await follower.replicate(ReplicatedBatch(origin: "api-1", events: Array(written[0..<20]), throughOffset: 20))
        _ = try await follower.replicate(ReplicatedBatch(origin: "api-1", events: Array(written[20..<40]), throughOffset: 40))
        _ = try await follower.replicate(ReplicatedBatch(origin: "", events: [written[54]], throughOffset: nil))
        _ = try await follower.replicate(ReplicatedBatch(origin: "api-1", events: Array(written[40..<48]), throughOffset: 48))
        let before = try await indexedCopies(follower.path)
        #expect(before.entries == 1, "only the gathered copy is in the index yet")
        #expect(before.watermark == 0)
        #expect(before.timeline == 49, "the views show every copy once")

        let expected = Dictionary(grouping: written[0..<48] + [written[54]], by: \.orderID).mapValues { $0.map(\.offset).sorted() }
        for order in orders {
            #expect(try await follower.events(orderID: order).map(\.offset).sorted() == expected[order], "\(order) from the node")
        }
        let reader = try EventLog.openReadOnly(path: follower.path)
        for order in orders {
            #expect(try await reader.events(orderID: order).map(\.offset).sorted() == expected[order], "\(order) read-only")
        }
        // The checkpoint guard counts the unindexed copies.
        let o1 = expected["o1"]!.count
        _ = try await follower.append(AppendRequest(events: [], checkpoint: Checkpoint(orderID: "o1", version: 12, state: "s", coveredEvents: Int64(o1 - 1))))
        #expect(try await follower.checkpoint(orderID: "o1") == nil)
        _ = try await follower.append(AppendRequest(events: [], checkpoint: Checkpoint(orderID: "o1", version: 12, state: "s", coveredEvents: Int64(o1))))
        #expect(try await follower.checkpoint(orderID: "o1")?.state == "s")

        // Past a batch of 50 the writer indexes them.
        _ = try await follower.replicate(ReplicatedBatch(origin: "api-1", events: Array(written[48..<60]), throughOffset: 60))
        follower.close()
        let after = try await indexedCopies(follower.path)
        #expect(after.entries == 60 && after.watermark == 60 && after.timeline == 60)
    }

    /// The writer adds an index batch in chunks, one transaction each, with
    /// appends committed in between, and moves the marks with the last one:
    /// meanwhile some events past the marks are in the index already. At
    /// every step, every read (the node's, a read-only open's, the views')
    /// sees each event once, and the checkpoint guard counts each once.
    @Test func anIndexBatchAddedInChunksIsReadOnceAtEveryStep() async throws {
        let folder = try TemporaryFolder()
        let copied = try await origin(folder.path, orders: ["c0", "c1", "c2"], versions: 1...20)  // offsets 1...60
        var options = options(batch: 8)
        options.indexChunkRows = 1
        let log = try EventLog.open(data: folder.path, node: "api-2", options: options)
        let reader = try EventLog.openReadOnly(path: log.path)
        let queue = try DatabaseQueue(path: log.path, configuration: { var c = Configuration(); c.readonly = true; return c }())
        let own = ["o0", "o1", "o2", "o3"]
        var expected: [String: [Int64]] = [:]  // offsets per order, own and copied
        var versions: [String: Int64] = [:]
        var copiedThrough = 0
        var sawABatchUnderWay = false
        for step in 0..<120 {
            if step % 3 == 2 && copiedThrough < copied.count {
                // A tail loop's copy.
                let copy = copied[copiedThrough]
                copiedThrough += 1
                _ = try await log.replicate(ReplicatedBatch(origin: "api-1", events: [copy], throughOffset: copy.offset))
                expected[copy.orderID, default: []].append(copy.offset)
            } else {
                let order = own[step % own.count]
                let version = (versions[order] ?? 0) + 1
                versions[order] = version
                let stored = try await log.append(AppendRequest(events: [event(order, version)]))
                expected[order, default: []].append(stored[0].offset)
                // Its checkpoint, counting every event of the order.
                _ = try await log.append(AppendRequest(
                    events: [], checkpoint: Checkpoint(orderID: order, version: version, state: "s\(version)", coveredEvents: version)))
                #expect(try await log.checkpoint(orderID: order)?.version == version, "step \(step): the checkpoint of \(order) v\(version) was refused")
            }
            let marks = try await queue.read { db in
                (try Int64.fetchOne(db, sql: "SELECT CAST(value AS INTEGER) FROM log_meta WHERE key = 'indexed_through'") ?? 0,
                 try Int.fetchOne(db, sql: #"SELECT count(*) FROM order_index WHERE origin = 'api-2' AND "offset" > (SELECT CAST(value AS INTEGER) FROM log_meta WHERE key = 'indexed_through')"#) ?? 0)
            }
            if marks.1 > 0 { sawABatchUnderWay = true }
            for (order, offsets) in expected {
                #expect(try await log.events(orderID: order).map(\.offset).sorted() == offsets.sorted(), "step \(step): \(order) from the node")
                #expect(try await reader.events(orderID: order).map(\.offset).sorted() == offsets.sorted(), "step \(step): \(order) read-only")
                let timeline = try await queue.read { db in
                    try Int64.fetchAll(db, sql: #"SELECT "offset" FROM order_events WHERE order_id = ? ORDER BY "offset""#, arguments: [order])
                }
                #expect(timeline == offsets.sorted(), "step \(step): \(order) through order_events")
            }
        }
        #expect(sawABatchUnderWay, "no read saw own events in the index past indexed_through: the test did not test chunks")
        log.close()
        let after = try await meta(log.path)
        #expect(after.entries == expected.values.reduce(0) { $0 + $1.count })
    }

    /// A tail loop's copy stored while an index batch is under way, below
    /// the watermark that batch will set (the loop went back over a gap):
    /// the batch's last transaction indexes it too, so reads still find it.
    @Test func aCopyBelowTheWatermarkABatchUnderWaySetsIsIndexedWithIt() async throws {
        let folder = try TemporaryFolder()
        let copied = try await origin(folder.path, orders: ["c0", "c1"], versions: 1...10)  // offsets 1...20
        var options = options(batch: 8)
        options.indexChunkRows = 1
        let log = try EventLog.open(data: folder.path, node: "api-2", options: options)
        defer { log.close() }
        // Offsets 1...10 but 4: a batch of nine copies starts.
        let first = copied[0..<10].filter { $0.offset != 4 }
        _ = try await log.replicate(ReplicatedBatch(origin: "api-1", events: Array(first), throughOffset: 10))
        // Offset 4 comes while it is under way.
        _ = try await log.replicate(ReplicatedBatch(origin: "api-1", events: [copied[3]], throughOffset: 10))
        // Appends move the batch on, a row each, to its end.
        for version in Int64(1)...7 { _ = try await log.append(AppendRequest(events: [event("own", version)])) }
        // The writer runs the last chunk after the last commit, before it
        // takes the next request (a barrier would not wait: nothing is
        // unanswered).
        _ = try await log.append(AppendRequest(events: [], checkpoint: Checkpoint(orderID: "other", version: 1, state: "s")))
        let watermark = try await indexedCopies(log.path).watermark
        #expect(watermark == 10, "the batch ended and moved the watermark")
        let order = copied[3].orderID
        let expected = copied[0..<10].filter { $0.orderID == order }.map(\.offset)
        #expect(try await log.events(orderID: order).map(\.offset) == expected)
        #expect(try await EventLog.openReadOnly(path: log.path).events(orderID: order).map(\.offset) == expected)
        // The next batch takes that copy again (it is still in the writer's
        // memory): the watermark does not go back to it.
        for version in Int64(8)...20 { _ = try await log.append(AppendRequest(events: [event("own", version)])) }
        _ = try await log.append(AppendRequest(events: [], checkpoint: Checkpoint(orderID: "other", version: 2, state: "s")))
        #expect(try await meta(log.path).indexed >= 8, "the next batch (own events 1...8 and that copy) ended")
        #expect(try await indexedCopies(log.path).watermark == 10)
        #expect(try await log.events(orderID: order).map(\.offset) == expected)
    }

    /// A crash in the middle of an index batch leaves some of its chunks
    /// in the index and the marks where they were: opening the log indexes
    /// the rest, and every read counts each event once.
    @Test func aCrashInTheMiddleOfAChunkedBatchIsRepairedAtOpen() async throws {
        let folder = try TemporaryFolder()
        var options = options(batch: 8)
        options.indexChunkRows = 1
        let log = try EventLog.open(data: folder.path, node: "api-1", options: options)
        defer { log.close() }
        // Eight events start a batch (its first chunk follows the eighth
        // commit); each commit after adds one more chunk.
        for version in Int64(1)...11 { _ = try await log.append(AppendRequest(events: [event(version % 2 == 0 ? "a" : "b", version)])) }
        let crashed = try TemporaryFolder()
        let copy = EventLog.path(data: crashed.path, node: "api-1")
        try FileManager.default.createDirectory(atPath: (copy as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        for suffix in ["", "-wal"] { try FileManager.default.copyItem(atPath: log.path + suffix, toPath: copy + suffix) }
        let atCrash = try await meta(copy)
        // (The eleventh commit's chunk may or may not have run yet.)
        #expect(atCrash.indexed == 0 && (1...7).contains(atCrash.entries), "the crash came with part of the batch in the index: \(atCrash)")

        let reopened = try EventLog.open(data: crashed.path, node: "api-1", options: options)
        defer { reopened.close() }
        let repaired = try await meta(copy)
        #expect(repaired.indexed == 11)
        #expect(repaired.entries == 11)
        #expect(try await reopened.events(orderID: "a").map(\.version) == [2, 4, 6, 8, 10])
        #expect(try await reopened.events(orderID: "b").map(\.version) == [1, 3, 5, 7, 9, 11])
        let queue = try DatabaseQueue(path: copy, configuration: { var c = Configuration(); c.readonly = true; return c }())
        #expect(try await queue.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM order_events") } == 11)
    }

    /// A batch larger than the writer sorts in place is sorted on another
    /// thread while appends go on; it is indexed whole, in order, and
    /// reads see each event once throughout; closing the log waits for it.
    @Test func aLargeBatchIsSortedAsideWhileAppendsGoOn() async throws {
        let folder = try TemporaryFolder()
        var options = options(batch: 3000)
        options.indexChunkRows = 500
        let log = try EventLog.open(data: folder.path, node: "api-1", options: options)
        let orders = (0..<100).map { "o\($0)" }
        for version in Int64(1)...40 {
            _ = try await log.append(AppendRequest(events: orders.map { event($0, version) }))
            for order in ["o0", "o57", "o99"] {
                #expect(try await log.events(orderID: order).map(\.version) == Array(1...version), "\(order) after round \(version)")
            }
        }
        log.close()
        let after = try await meta(log.path)
        #expect(after.indexed == 4000)
        #expect(after.entries == 4000)
        let queue = try DatabaseQueue(path: log.path, configuration: { var c = Configuration(); c.readonly = true; return c }())
        let perOrder = try await queue.read { db in try Int.fetchAll(db, sql: "SELECT count(*) FROM order_events GROUP BY order_id") }
        #expect(perOrder == Array(repeating: 40, count: 100))
    }

    /// Index rows are sorted as SQLite orders the index's key: text by its
    /// UTF-8 bytes (not by Unicode scalars or Swift's String order), then
    /// version, origin, offset.
    @Test func indexRowsAreSortedAsSQLiteOrdersTheKey() {
        var random = SystemRandomNumberGenerator()
        let alphabet = ["a", "b", "o", "-", "1", "9", "é", "€", "😀", "Z", "\u{7f}"]
        let rows = (0..<2000).map { index -> UnindexedTail.Entry in
            let id = (0..<Int.random(in: 0...6, using: &random)).map { _ in alphabet.randomElement(using: &random)! }.joined()
            return UnindexedTail.Entry(
                orderID: id, version: Int64.random(in: 1...3, using: &random), origin: ["api-1", "api-2", "api-10"].randomElement(using: &random)!,
                offset: Int64(index))
        }
        var sorted = rows
        GroupCommitWriter.sortByKey(&sorted)
        let expected = rows.sorted { a, b in
            if Array(a.orderID.utf8) != Array(b.orderID.utf8) { return a.orderID.utf8.lexicographicallyPrecedes(b.orderID.utf8) }
            if a.version != b.version { return a.version < b.version }
            if a.origin != b.origin { return a.origin.utf8.lexicographicallyPrecedes(b.origin.utf8) }
            return a.offset < b.offset
        }
        #expect(sorted == expected)
    }

    /// Reads of an order the log never held skip SQLite (`OrderPresence`).
    /// Once the filter holds what the file held at open, every order the
    /// file held still reads whole (own events, copies from a tail loop and
    /// gathered ones, an order known by its checkpoint), and so does every
    /// order written since, own or copied; ids never written read as absent,
    /// most of them without a read.
    @Test func ordersNeverHeldAreKnownAbsentAndEveryHeldOrderStillReads() async throws {
        let folder = try TemporaryFolder()
        let copied = try await origin(folder.path, orders: ["c0", "c1", "c2"], versions: 1...10)  // offsets 1...30
        let own = (0..<5).map { "a\($0)" }
        var log = try EventLog.open(data: folder.path, node: "api-2", options: options(batch: 50))
        for version in 1...12 {
            for order in own { _ = try await log.append(AppendRequest(events: [event(order, Int64(version))])) }
        }
        _ = try await log.replicate(ReplicatedBatch(origin: "api-1", events: Array(copied[0..<20]), throughOffset: 20))
        _ = try await log.replicate(ReplicatedBatch(origin: "", events: [copied[26]], throughOffset: nil))
        _ = try await log.append(AppendRequest(events: [], checkpoint: Checkpoint(orderID: "a4", version: 12, state: "s12", coveredEvents: 12)))
        log.close()

        log = try EventLog.open(data: folder.path, node: "api-2", options: options(batch: 50))
        defer { log.close() }
        try await waitFor("the order filter to be filled") { log.orderFilterReady }
        let held = Dictionary(grouping: copied[0..<20] + [copied[26]], by: \.orderID).mapValues { $0.map(\.offset).sorted() }
        for order in own {
            #expect(log.mightHold(order), "\(order)")
            #expect(try await log.events(orderID: order).map(\.version) == Array(1...12), "\(order)")
        }
        #expect(try await log.checkpoint(orderID: "a4")?.state == "s12")
        #expect(try await log.load(orderID: "a4").checkpoint?.version == 12)
        for (order, offsets) in held {
            #expect(log.mightHold(order), "\(order)")
            #expect(try await log.events(orderID: order).map(\.offset).sorted() == offsets, "\(order)")
        }

        // Written after the filter was filled: read at once.
        _ = try await log.append(AppendRequest(events: [event("n0", 1)]))
        _ = try await log.replicate(ReplicatedBatch(origin: "api-1", events: Array(copied[20..<30]), throughOffset: 30))
        #expect(try await log.load(orderID: "n0").events.map(\.version) == [1])
        let c2 = copied.filter { $0.orderID == "c2" }.map(\.offset)
        let readC2 = try await log.events(orderID: "c2").map(\.offset).sorted()
        #expect(readC2 == c2, "\(readC2) \(c2)")

        // Never written: absent, and nearly always known so without a read.
        let strangers = (0..<2000).map { "never-\($0)" }
        for order in strangers.prefix(50) {
            let loaded = try await log.load(orderID: order)
            #expect(loaded.checkpoint == nil && loaded.events.isEmpty, "\(order)")
        }
        let known = strangers.filter { !log.mightHold($0) }.count
        #expect(known >= 1980, "\(known) of 2000 ids never written were known absent")
    }

    /// A gathered copy is indexed at once, ahead of the tail loop. At open,
    /// the copies' watermark moved to the newest copy stored (27), so the
    /// tail loop's copies below it that came after the restart (21 to 26)
    /// were taken as indexed and never were: reads by order missed them for
    /// good. A copy at or below the watermark is now indexed as it is stored.
    @Test func copiesBelowAGatheredCopyAreReadAfterARestart() async throws {
        let folder = try TemporaryFolder()
        let copied = try await origin(folder.path, orders: ["c0", "c1", "c2"], versions: 1...10)  // offsets 1...30
        var log = try EventLog.open(data: folder.path, node: "api-2", options: options(batch: 50))
        _ = try await log.replicate(ReplicatedBatch(origin: "api-1", events: Array(copied[0..<20]), throughOffset: 20))
        _ = try await log.replicate(ReplicatedBatch(origin: "", events: [copied[26]], throughOffset: nil))
        log.close()
        log = try EventLog.open(data: folder.path, node: "api-2", options: options(batch: 50))
        defer { log.close() }
        _ = try await log.replicate(ReplicatedBatch(origin: "api-1", events: Array(copied[20..<30]), throughOffset: 30))
        for order in ["c0", "c1", "c2"] {
            let offsets = copied.filter { $0.orderID == order }.map(\.offset)
            #expect(try await log.events(orderID: order).map(\.offset).sorted() == offsets, "\(order) before the copies are indexed")
        }
        // And once the writer indexed them (a batch of 50 copies), and again after a restart.
        _ = try await log.replicate(ReplicatedBatch(origin: "", events: [], throughOffset: nil))
        log.close()
        log = try EventLog.open(data: folder.path, node: "api-2", options: options(batch: 50))
        for order in ["c0", "c1", "c2"] {
            let offsets = copied.filter { $0.orderID == order }.map(\.offset)
            #expect(try await log.events(orderID: order).map(\.offset).sorted() == offsets, "\(order) after a restart")
        }
        let reader = try EventLog.openReadOnly(path: log.path)
        for order in ["c0", "c1", "c2"] {
            let offsets = copied.filter { $0.orderID == order }.map(\.offset)
            #expect(try await reader.events(orderID: order).map(\.offset).sorted() == offsets, "\(order) read-only")
        }
    }

    /// A file from a build before that fix (migration 0008 not applied)
    /// may lack copies at or below their watermark in `order_index`: the
    /// migration puts them in, so reads by order and the order filter find
    /// them.
    @Test func copiesAnOlderBuildLeftOutBelowTheirWatermarkAreIndexedByTheMigration() async throws {
        let folder = try TemporaryFolder()
        let copied = try await origin(folder.path, orders: ["c0", "c1", "c2"], versions: 1...10)  // offsets 1...30
        var log = try EventLog.open(data: folder.path, node: "api-2", options: options(batch: 50))
        _ = try await log.replicate(ReplicatedBatch(origin: "api-1", events: copied, throughOffset: 30))
        log.close()
        // The file as such a build left it: c2's copies stored, below the
        // watermark, and not in the index.
        let queue = try DatabaseQueue(path: log.path)
        try await queue.write { db in
            try db.execute(sql: "INSERT INTO log_meta (key, value) VALUES ('indexed_through:api-1', 30) ON CONFLICT(key) DO UPDATE SET value = 30")
            try db.execute(sql: "DELETE FROM order_index WHERE order_id = 'c2'")
            try db.execute(sql: "DELETE FROM schema_migrations WHERE version = 8")
        }
        try queue.close()

        log = try EventLog.open(data: folder.path, node: "api-2", options: options(batch: 50))
        defer { log.close() }
        try await waitFor("the order filter to be filled") { log.orderFilterReady }
        for order in ["c0", "c1", "c2"] {
            let offsets = copied.filter { $0.orderID == order }.map(\.offset)
            #expect(log.mightHold(order), "\(order)")
            #expect(try await log.events(orderID: order).map(\.offset).sorted() == offsets, "\(order)")
        }
    }

    @Test func copiesACrashLeftOutOfTheIndexAreIndexedAtOpen() async throws {
        let folder = try TemporaryFolder()
        let written = try await origin(folder.path, orders: ["a", "b"], versions: 1...10)
        let follower = try EventLog.open(data: folder.path, node: "api-2", options: options(batch: 10_000))
        defer { follower.close() }
        _ = try await follower.replicate(ReplicatedBatch(origin: "api-1", events: written, throughOffset: 20))
        // The files as a crash would leave them: the copies stored, none indexed.
        let crashed = try TemporaryFolder()
        let copy = EventLog.path(data: crashed.path, node: "api-2")
        try FileManager.default.createDirectory(atPath: (copy as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        for suffix in ["", "-wal"] { try FileManager.default.copyItem(atPath: follower.path + suffix, toPath: copy + suffix) }
        #expect(try await indexedCopies(copy).entries == 0)

        let reopened = try EventLog.open(data: crashed.path, node: "api-2", options: options(batch: 10_000))
        defer { reopened.close() }
        let repaired = try await indexedCopies(copy)
        #expect(repaired.entries == 20 && repaired.watermark == 20)
        #expect(try await reopened.events(orderID: "a").map(\.version) == Array(1...10))
    }

    @Test func theTailKeepsWhatASnapshotNeedsAndSaysWhenItCannot() {
        let tail = UnindexedTail(keptAfter: 0)
        func add(_ range: ClosedRange<Int64>) {
            tail.add(range.map { .init(orderID: $0 % 2 == 0 ? "even" : "odd", version: $0, origin: "api-1", offset: $0) })
        }
        add(1...5)
        #expect(tail.entries(orderID: "even", after: 0)?.map(\.offset) == [2, 4])
        // Indexed through 5 (from 0): a snapshot at 0 or at 5 is served.
        tail.indexed(previous: 0)
        add(6...10)
        #expect(tail.entries(orderID: "odd", after: 0)?.map(\.offset) == [1, 3, 5, 7, 9])
        #expect(tail.entries(orderID: "odd", after: 5)?.map(\.offset) == [7, 9])
        // A rolled-back transaction's entries go.
        tail.removeFrom(offset: 9)
        #expect(tail.entries(orderID: "odd", after: 5)?.map(\.offset) == [7])
        #expect(tail.count == 8)
        // Indexed through 8 (from 5): a snapshot at 0 is too old now.
        tail.indexed(previous: 5)
        #expect(tail.entries(orderID: "even", after: 0) == nil)
        #expect(tail.entries(orderID: "even", after: 5)?.map(\.offset) == [6, 8])
        #expect(tail.entries(orderID: "even", after: 8) == [])
        #expect(tail.count == 3)
    }
}
