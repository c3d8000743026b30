import Foundation
import GRDB
import TestSupport
import LogStorage
import Testing

@testable import EventLog
@testable import Checksum

/// One test at a time: run side by side with every other suite at the
/// start of `swift test`, this suite's SQLite logs (a few descriptors each)
/// took the test process near the ~1,350 open descriptors at which Swift
/// 6.3's `Process.run()` crashes (see the README).
@Suite(.serialized) struct EventLogTests {
    func event(_ order: String, _ version: Int64, type: String = "OrderPlaced", payload: String = #"{"v":1}"#) -> NewEvent {
        NewEvent(orderID: order, version: version, type: type, payload: payload)
    }

    @Test func eventIDsPadTheOffsetToTwelveDigitsSoTheySortInOffsetOrder() {
        for offset: Int64 in [1, 9, 10, 12_345, 999_999_999_999, 1_000_000_000_000, 4_611_686_018_427_387_904] {
            let digits = String(offset)
            let expected = "api-1-ab12-" + String(repeating: "0", count: max(0, 12 - digits.count)) + digits
            #expect(EventLog.eventID(origin: "api-1", logID: "ab12", offset: offset) == expected)
        }
        let ids = (1...2000).map { EventLog.eventID(prefix: "n-x-", offset: Int64($0)) }
        #expect(ids == ids.sorted())
    }

    @Test func appendAssignsDenseOffsetsAndStoresEveryColumn() async throws {
        let folder = try TemporaryFolder()
        let log = try EventLog.open(data: folder.path, node: "api-1")
        defer { log.close() }
        let first = try await log.append(AppendRequest(events: [event("o1", 1), event("o1", 2, type: "PaymentReceived")]))
        let second = try await log.append(AppendRequest(events: [event("o2", 1)]))
        #expect(first.map(\.offset) == [1, 2])
        #expect(second.map(\.offset) == [3])

        let rows = try await log.scan(fromOffset: 1, limit: 10)
        #expect(rows.map(\.offset) == [1, 2, 3])
        #expect(rows.allSatisfy { $0.origin == "api-1" && $0.isIntact && $0.recordedAt > 0 })
        #expect(Set(rows.map(\.eventID)).count == 3)
        #expect(rows[1].type == "PaymentReceived")
        #expect(EventLog.path(data: folder.path, node: "api-1") == log.path)

        // Text is bound by its bytes: empty, short (stored inline) and long
        // strings, and bytes past the BMP, come back exactly.
        for payload in ["", "{}", String(repeating: "x", count: 300), #"{"note":"café 🧾"}"#] {
            let stored = try await log.append(AppendRequest(events: [event("o3", Int64(payload.count + 1), payload: payload)]))
            let back = try await log.scan(fromOffset: stored[0].offset, limit: 1)
            #expect(back.map(\.payload) == [payload])
            #expect(back.allSatisfy { $0.isIntact })
        }
    }

    @Test func concurrentAppendsAllCommitWithUniqueDenseOffsets() async throws {
        let folder = try TemporaryFolder()
        let log = try EventLog.open(data: folder.path, node: "api-1")
        let offsets = try await withThrowingTaskGroup(of: Int64.self) { group in
            for index in 0..<400 {
                group.addTask { try await log.append(AppendRequest(events: [self.event("o\(index)", 1)]))[0].offset }
            }
            var all: [Int64] = []
            for try await offset in group { all.append(offset) }
            return all
        }
        #expect(offsets.sorted() == Array(1...400))
        log.close()

        let reopened = try EventLog.open(data: folder.path, node: "api-1")
        defer { reopened.close() }
        #expect(reopened.lastOffsetAtOpen == 400)
        let next = try await reopened.append(AppendRequest(events: [event("o-next", 1)]))
        #expect(next[0].offset == 401)
    }

    @Test func writerFsyncsBeforeAnsweringByDefaultAndRelaxedWhenAsked() async throws {
        let folder = try TemporaryFolder()
        // (durability, pipelined, SQLite's own synchronous level, the sync thread fsyncs)
        let cases: [(Durability, Bool, Int, Bool)] = [(.fsync, true, 1, true), (.fsync, false, 2, false), (.relaxed, true, 1, false)]
        for (durability, pipelined, level, syncs) in cases {
            var options = EventLogOptions()
            options.durability = durability
            options.pipelinedSync = pipelined
            let log = try EventLog.open(data: folder.path, node: "n-\(durability.rawValue)-\(pipelined)", options: options)
            defer { log.close() }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<50 {
                    group.addTask { _ = try await log.append(AppendRequest(events: [self.event("o\(index)", 1)])) }
                }
                try await group.waitForAll()
            }
            let pool = try #require(log.reader as? DatabasePool)
            let synchronous = try await pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") }
            let journal = try await pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
            #expect(synchronous == level, "\(durability) pipelined \(pipelined)")
            #expect(journal == "wal")
            // Every answered append was covered by an fsync issued after
            // its commit: at least one per answered batch, at most one per commit.
            let commits = log.writerStatistics.commits
            #expect(syncs ? (log.walSyncs >= 1 && log.walSyncs <= commits) : log.walSyncs == 0, "\(durability) pipelined \(pipelined): \(log.walSyncs) syncs, \(commits) commits")
        }
    }

    /// The writer zeroes the WAL ahead of SQLite (so fsyncs overwrite blocks
    /// the file has) up to its size between checkpoints, through WAL
    /// restarts; a crash image of such a WAL opens with every answered event.
    @Test func theWALIsZeroedAheadAndACrashImageOpensWithEveryAnsweredEvent() async throws {
        let folder = try TemporaryFolder()
        var options = EventLogOptions()
        options.walAutocheckpointPages = 400  // 1.6 MiB of 4 KiB frames
        let log = try EventLog.open(data: folder.path, node: "api-1", options: options)
        defer { log.close() }
        func walBytes(_ path: String) throws -> Int {
            try (FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? NSNumber)?.intValue ?? -1
        }
        _ = try await log.append(AppendRequest(events: [event("o0", 1)]))
        // SQLite alone would have written a few frames (tens of KiB).
        #expect(try walBytes(log.path) >= 1 << 18)

        var answered: [EventRecord] = []
        for batch in 0..<300 {
            answered += try await log.append(AppendRequest(events: (0..<10).map { event("o\(batch)-\($0)", 1, payload: #"{"pad":"\#(String(repeating: "p", count: 200))"}"#) }))
        }
        // Past a few checkpoints the WAL restarted and never grew past its
        // size between them (plus the commit that crossed it).
        let frameBytes = options.pageBytes + 24
        let target = 32 + options.walAutocheckpointPages * frameBytes
        let size = try walBytes(log.path)
        #expect(size >= target && size <= target + 64 * frameBytes, "WAL \(size) bytes, target \(target)")

        let crashed = try TemporaryFolder()
        let copy = EventLog.path(data: crashed.path, node: "api-1")
        try FileManager.default.createDirectory(atPath: (copy as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        for suffix in ["", "-wal"] { try FileManager.default.copyItem(atPath: log.path + suffix, toPath: copy + suffix) }
        let reader = try EventLog.openReadOnly(path: copy)
        let rows = try await reader.scan(fromOffset: 1, limit: 10_000)
        #expect(rows.count == 1 + answered.count)
        #expect(Array(rows.dropFirst()) == answered)
    }

    /// Followers' fetches of the own log are answered from the newest
    /// durable own events kept in memory where they reach back far enough:
    /// what a fetch gets must be what the file holds, across a restart
    /// (nothing in memory yet), concurrent appends, and own events put back
    /// past the newest (a node that lost its log).
    @Test func theOwnLogAsFollowersFetchItIsWhatTheFileHolds() async throws {
        let folder = try TemporaryFolder()
        let first = try EventLog.open(data: folder.path, node: "api-1")
        for i in 1...20 { _ = try await first.append(AppendRequest(events: (1...3).map { event("a\(i)", Int64($0)) })) }
        first.close()
        let log = try EventLog.open(data: folder.path, node: "api-1")
        defer { log.close() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 1...40 {
                group.addTask { _ = try await log.append(AppendRequest(events: (1...2).map { self.event("b\(i)", Int64($0)) })) }
            }
            try await group.waitForAll()
        }
        #expect(log.committedOffset == 140)
        let file = try EventLog.openReadOnly(path: log.path)
        func sameAsTheFile(_ when: String) async throws {
            for from: Int64 in [1, 2, 59, 60, 61, 62, 100, 139, 140, 141, 150, 151, 153, 156, 157, 400] {
                for limit in [1, 5, 1000] {
                    let fetched = try await log.scan(origin: nil, fromOffset: from, limit: limit)
                    let held = try await file.scan(origin: nil, fromOffset: from, limit: limit)
                    let same = fetched == held
                    #expect(same, "\(when): from \(from), limit \(limit): offsets \(fetched.map(\.offset)) against \(held.map(\.offset))")
                }
            }
        }
        try await sameAsTheFile("after concurrent appends")
        let putBack = [Int64(150), 152].map { offset in
            EventRecord(
                origin: "api-1", offset: offset, orderID: "old\(offset)", version: 1, type: "OrderPlaced", payload: "{}",
                eventID: EventID.make(origin: "api-1", logID: "0ld", offset: offset), recordedAt: 1, term: 4)
        }
        #expect(try await log.reimport(putBack, floor: 155) == 2)
        #expect(log.committedOffset == 155)
        try await sameAsTheFile("after own events were put back")
        #expect(try await log.append(AppendRequest(events: [event("c", 1)])).map(\.offset) == [156])
        try await sameAsTheFile("after the next append")
        file.close()
    }

    /// The run of own events in memory answers only for offsets it holds
    /// with no gap: a transaction whose events skip offsets (own events put
    /// back between two appends of one batch) or that ends elsewhere than
    /// its durable end empties it, and the reader goes to SQLite.
    @Test func theOwnEventsInMemoryNeverAnswerAcrossAGap() {
        func records(_ offsets: [Int64]) -> [EventRecord] {
            offsets.map {
                EventRecord(origin: "api-1", offset: $0, orderID: "o\($0)", version: 1, type: "OrderPlaced", payload: "{}", eventID: "e\($0)", recordedAt: 1)
            }
        }
        let recent = RecentOwnEvents(capacity: 8)
        recent.add(records([1, 2, 3]), through: 3)
        #expect(recent.events(fromOffset: 2, limit: 10)?.map(\.offset) == [2, 3])
        #expect(recent.events(fromOffset: 4, limit: 10)?.isEmpty == true, "nothing durable after 3")
        recent.add(records([4, 9]), through: 9)
        for from: Int64 in 5...9 {
            #expect(recent.events(fromOffset: from, limit: 10) == nil, "offsets 5 to 8 may hold events put back (from \(from))")
        }
        #expect(recent.events(fromOffset: 1, limit: 10) == nil)
        recent.add(records([10, 11]), through: 12)
        #expect(recent.events(fromOffset: 10, limit: 10) == nil, "a transaction that ends past its events empties the run")
        recent.add(records(Array(13...30)), through: 30)
        #expect(recent.events(fromOffset: 23, limit: 100)?.map(\.offset) == Array(23...30), "the newest 8 are held")
        #expect(recent.events(fromOffset: 22, limit: 1) == nil, "older ones were dropped")
        #expect(recent.events(fromOffset: 30, limit: .max)?.map(\.offset) == [30])
    }

    @Test func migrationsAreRecordedOnceAndTheEmbeddedCopyMatchesTheFiles() async throws {
        let folder = try TemporaryFolder()
        let log = try EventLog.open(data: folder.path, node: "api-1")
        log.close()
        let again = try EventLog.open(data: folder.path, node: "api-1")
        again.close()
        let queue = try DatabaseQueue(path: again.path)
        let versions = try await queue.read { db in try Int.fetchAll(db, sql: "SELECT version FROM schema_migrations ORDER BY version") }
        #expect(versions == Migrations.all.map(\.version))

        let folderURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("migrations")
        let files = try FileManager.default.contentsOfDirectory(atPath: folderURL.path).filter { $0.hasSuffix(".sql") }.sorted()
        #expect(files.map { String($0.dropLast(4)) } == Migrations.all.map(\.name), "run tools/embed-migrations")
        for (file, migration) in zip(files, Migrations.all) {
            let text = try String(contentsOf: folderURL.appendingPathComponent(file), encoding: .utf8)
            #expect(text == migration.sql + "\n", "migrations/\(file) differs from the embedded copy: run tools/embed-migrations")
        }
    }

    @Test func aFileFromANewerReleaseIsRefused() async throws {
        let folder = try TemporaryFolder()
        let log = try EventLog.open(data: folder.path, node: "api-1")
        log.close()
        let queue = try DatabaseQueue(path: log.path)
        try await queue.write { db in
            try db.execute(sql: "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)")
        }
        #expect(throws: EventLogError.schemaTooNew(version: 9999)) {
            _ = try EventLog.open(data: folder.path, node: "api-1")
        }
    }

    @Test func aCorruptRowIsReportedWithItsPositionNeverSkipped() async throws {
        let folder = try TemporaryFolder()
        let log = try EventLog.open(data: folder.path, node: "api-1")
        _ = try await log.append(AppendRequest(events: [event("o1", 1), event("o1", 2), event("o1", 3)]))
        log.close()
        // Edit a payload behind the log's back, as a disk fault or a hand edit would.
        let queue = try DatabaseQueue(path: log.path)
        try await queue.write { db in
            try db.execute(sql: #"UPDATE events SET payload = '{"v":2}' WHERE "offset" = 2"#)
        }
        let reader = try EventLog.openReadOnly(path: log.path)
        await #expect(throws: EventLogError.corruptEvent(origin: "api-1", offset: 2, orderID: "o1")) {
            _ = try await reader.events(orderID: "o1")
        }
        await #expect(throws: EventLogError.corruptEvent(origin: "api-1", offset: 2, orderID: "o1")) {
            _ = try await reader.scan(fromOffset: 1)
        }
        await #expect(throws: EventLogError.corruptEvent(origin: "api-1", offset: 2, orderID: "o1")) {
            _ = try await reader.withEventRows(origin: "api-1") { rows in
                while try rows.next() != nil {}
            }
        }
        let rows = try await reader.scanUnverified(fromOffset: 1)
        #expect(rows.map(\.isIntact) == [true, false, true])
    }

    @Test func theRowCursorReadsWhatScanReads() async throws {
        let folder = try TemporaryFolder()
        let log = try EventLog.open(data: folder.path, node: "api-1")
        defer { log.close() }
        _ = try await log.append(AppendRequest(events: (1...50).map { event("o\($0 % 7)", Int64($0), payload: #"{"v":1,"n":"é\#($0)"}"#) }))
        let scanned = try await log.scan(fromOffset: 11, limit: 30)
        struct Row: Equatable, Sendable { let offset, version, recordedAt: Int64; let orderID, type, payload, eventID: String }
        let read = try await log.withEventRows(origin: "api-1", fromOffset: 11, throughOffset: 40) { rows in
            var read: [Row] = []
            while let row = try rows.next() {
                read.append(Row(
                    offset: row.offset, version: row.version, recordedAt: row.recordedAt, orderID: String(decoding: row.orderID, as: UTF8.self),
                    type: String(decoding: row.type, as: UTF8.self), payload: String(decoding: row.payload, as: UTF8.self),
                    eventID: String(decoding: row.eventID, as: UTF8.self)))
            }
            return read
        }
        #expect(read == scanned.map {
            Row(offset: $0.offset, version: $0.version, recordedAt: $0.recordedAt, orderID: $0.orderID, type: $0.type, payload: $0.payload, eventID: $0.eventID)
        })
        #expect(read.count == 30)
    }

    @Test func aCorruptTailIsFoundWhenTheLogOpens() async throws {
        let folder = try TemporaryFolder()
        let log = try EventLog.open(data: folder.path, node: "api-1")
        _ = try await log.append(AppendRequest(events: [event("o1", 1), event("o1", 2)]))
        log.close()
        let queue = try DatabaseQueue(path: log.path)
        try await queue.write { db in try db.execute(sql: #"UPDATE events SET version = 7 WHERE "offset" = 2"#) }
        #expect(throws: EventLogError.corruptEvent(origin: "api-1", offset: 2, orderID: "o1")) {
            _ = try EventLog.open(data: folder.path, node: "api-1")
        }
    }

    @Test func checkpointsCommitWithEventsAndNeverGoBackwards() async throws {
        let folder = try TemporaryFolder()
        let log = try EventLog.open(data: folder.path, node: "api-1")
        defer { log.close() }
        _ = try await log.append(AppendRequest(
            events: [event("o1", 1), event("o1", 2)], checkpoint: Checkpoint(orderID: "o1", version: 2, state: "two")))
        _ = try await log.append(AppendRequest(events: [], checkpoint: Checkpoint(orderID: "o1", version: 1, state: "one")))
        _ = try await log.append(AppendRequest(events: [event("o1", 3)]))
        let (checkpoint, after) = try await log.load(orderID: "o1")
        #expect(checkpoint?.version == 2)
        #expect(checkpoint?.state == "two")
        #expect(after.map(\.version) == [3])
    }

    @Test func aGuardedCheckpointIsWrittenOnlyIfItCoversEveryEventAtItsVersion() async throws {
        let folder = try TemporaryFolder()
        let log = try EventLog.open(data: folder.path, node: "api-1")
        defer { log.close() }
        _ = try await log.append(AppendRequest(events: [event("o1", 1), event("o1", 2)]))
        // Built from a read that saw one event: another landed since.
        _ = try await log.append(AppendRequest(events: [], checkpoint: Checkpoint(orderID: "o1", version: 2, state: "stale", coveredEvents: 1)))
        #expect(try await log.load(orderID: "o1").checkpoint == nil)
        _ = try await log.append(AppendRequest(events: [], checkpoint: Checkpoint(orderID: "o1", version: 2, state: "both", coveredEvents: 2)))
        #expect(try await log.load(orderID: "o1").checkpoint?.state == "both")
    }

    @Test func deadlinesAreSetAndClearedWithTheirEvents() async throws {
        let folder = try TemporaryFolder()
        let log = try EventLog.open(data: folder.path, node: "api-1")
        defer { log.close() }
        _ = try await log.append(AppendRequest(events: [event("o1", 1)], deadline: ("o1", .set(500))))
        _ = try await log.append(AppendRequest(events: [event("o2", 1)], deadline: ("o2", .set(100))))
        #expect(try await log.deadlines().map(\.orderID) == ["o2", "o1"])
        _ = try await log.append(AppendRequest(events: [event("o2", 2)], deadline: ("o2", .clear)))
        #expect(try await log.deadlines().map(\.orderID) == ["o1"])
    }

    @Test func aLogOpenedByAnotherNodeIsRefused() async throws {
        let folder = try TemporaryFolder()
        let path = (folder.path as NSString).appendingPathComponent("log.sqlite")
        let log = try EventLog.open(path: path, node: "api-1")
        log.close()
        #expect(throws: EventLogError.wrongOwner(expected: "api-2", found: "api-1")) {
            _ = try EventLog.open(path: path, node: "api-2")
        }
    }

    /// `events` keeps event ids unique through its primary key, so a copy
    /// whose id names another position is refused whole.
    @Test func copiesWhoseEventIDNamesAnotherPositionAreRefused() async throws {
        let folder = try TemporaryFolder()
        let leader = try EventLog.open(data: folder.path, node: "api-1")
        defer { leader.close() }
        let follower = try EventLog.open(data: folder.path, node: "api-2")
        defer { follower.close() }
        let written = try await leader.append(AppendRequest(events: [event("o1", 1), event("o1", 2)]))
        #expect(EventLog.eventID(written[1].eventID, spells: "api-1", offset: 2))

        for forged in [
            written[0].eventID, "api-1-\(leader.logID)-000000000003", "api-2-\(leader.logID)-000000000002",
            "api-1-000000000002", "api-1-a-b-000000000002", "api-1-\(leader.logID)-00000000000x", "api-1-\(leader.logID)-",
        ] {
            var copy = written[1]
            copy.eventID = forged
            copy.checksum = copy.computedChecksum  // intact, but misnamed
            await #expect(throws: EventLogError.self, "\(forged)") {
                _ = try await follower.replicate(ReplicatedBatch(origin: "api-1", events: [written[0], copy], throughOffset: 2))
            }
        }
        #expect(try await follower.replicaPositions()["api-1"] == nil)
        #expect(try await follower.events(orderID: "o1").isEmpty)

        #expect(try await follower.replicate(ReplicatedBatch(origin: "api-1", events: written, throughOffset: 2)) == 2)
        #expect(try await follower.events(orderID: "o1").map(\.eventID) == written.map(\.eventID))
    }

    @Test func invalidAppendsAndReadOnlyLogsChangeNothing() async throws {
        let folder = try TemporaryFolder()
        let log = try EventLog.open(data: folder.path, node: "api-1")
        await #expect(throws: EventLogError.self) {
            _ = try await log.append(AppendRequest(events: [event("", 1)]))
        }
        await #expect(throws: EventLogError.self) {
            _ = try await log.append(AppendRequest(events: [event("o1", 0)]))
        }
        #expect(try await log.lastOffset() == 0)
        log.close()
        await #expect(throws: EventLogError.closed) {
            _ = try await log.append(AppendRequest(events: [event("o1", 1)]))
        }
        let reader = try EventLog.openReadOnly(path: log.path)
        #expect(reader.isReadOnly)
        await #expect(throws: EventLogError.closed) {
            _ = try await reader.append(AppendRequest(events: [event("o1", 1)]))
        }
    }

    @Test func crc32cMatchesTheStandardCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    }

    /// The files of this process that are under `folder`.
    static func openFiles(under folder: String) -> [String] {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)") }
            .filter { $0.hasPrefix(folder) }
    }

    /// A process that opens logs one after another (a tool, the test
    /// suite) must not keep the closed ones' files: the writer's threads
    /// held the writer, and through it the database and its descriptors,
    /// for as long as the process ran (the test process had 1,200 of them
    /// open to deleted files, past the point where Foundation's
    /// `Process.run()` crashes).
    @Test func aClosedLogOnceReleasedKeepsNoFileOpen() async throws {
        let folder = try TemporaryFolder()
        do {
            let log = try EventLog.open(data: folder.path, node: "api-1")
            _ = try await log.append(AppendRequest(events: [event("o1", 1)]))
            #expect(try await log.scan(fromOffset: 1, limit: 10).count == 1)
            #expect(!Self.openFiles(under: folder.path).isEmpty)
            log.close()
        }
        try await waitFor("the closed log's files to be closed", timeout: .seconds(10)) { Self.openFiles(under: folder.path).isEmpty }
    }
}

@Suite struct CRC32CTests {
    /// Bit-at-a-time reference, to check the sliced tables at every length.
    func reference(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return crc ^ 0xFFFF_FFFF
    }

    @Test func slicedMatchesTheReferenceAtEveryLength() {
        var random = SystemRandomNumberGenerator()
        for length in 0..<70 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            #expect(CRC32C.checksum(bytes) == reference(bytes), "length \(length)")
        }
    }

    /// The CPU instruction (when there is one) and the tables give the same
    /// sum, fed whole or in pieces at any cut.
    @Test func hardwareAndSoftwareAgree() {
        var random = SystemRandomNumberGenerator()
        for length in 0..<300 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            let cut = length == 0 ? 0 : Int.random(in: 0...length, using: &random)
            var software = CRC32C.Accumulator()
            var mixed = CRC32C.Accumulator()
            bytes.withUnsafeBytes { whole in
                software.updateInSoftware(whole)
                mixed.update(UnsafeRawBufferPointer(rebasing: whole[..<cut]))
                mixed.update(UnsafeRawBufferPointer(rebasing: whole[cut...]))
            }
            #expect(software.value == reference(bytes), "length \(length)")
            #expect(mixed.value == software.value, "length \(length), cut \(cut), hardware \(CRC32C.hardware)")
        }
    }
}
