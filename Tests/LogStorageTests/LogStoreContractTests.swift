import EventLog
import Foundation
import LogStorage
import Synchronization
import TestSupport
import Testing

/// The contract of `LogStore`, run against both implementations: the SQLite
/// log of real nodes and the in-memory log of the simulation. What the
/// simulation proves holds only as far as its log behaves like the real
/// one: a case that passes on one and fails on the other is a bug in the
/// fake (or in the real log).
enum StoreKind: String, CaseIterable, CustomTestStringConvertible {
    case sqlite, memory

    var testDescription: String { rawValue }
}

/// A log under test, and how to open it again after a clean close.
final class StoreUnderTest: Sendable {
    let kind: StoreKind
    let folder: String
    let origin: String
    let clock: @Sendable () -> Int64
    private let current = Mutex<(any LogStore)?>(nil)

    init(_ kind: StoreKind, folder: String, origin: String = "api-1", clock: @escaping @Sendable () -> Int64 = { 1_700_000_000_000 }) throws {
        self.kind = kind
        self.folder = folder
        self.origin = origin
        self.clock = clock
        current.withLock { $0 = nil }
        _ = try open(disk: nil)
    }

    var log: any LogStore { current.withLock { $0! } }

    private func open(disk: LogImage?) throws -> any LogStore {
        let store: any LogStore
        switch kind {
        case .sqlite:
            var options = EventLogOptions()
            options.clock = clock
            store = try EventLog.open(data: folder, node: origin, options: options)
        case .memory:
            store = InMemoryLogStore(origin: origin, disk: disk, newLogID: "5eed", clock: clock)
        }
        current.withLock { $0 = store }
        return store
    }

    /// Closes the log cleanly and opens it again (the SQLite file, or the
    /// in-memory disk after a crash that loses nothing unsynced, since
    /// everything was answered).
    func reopen() throws -> any LogStore {
        let old = log
        old.close()
        switch kind {
        case .sqlite: return try open(disk: nil)
        case .memory: return try open(disk: (old as! InMemoryLogStore).crash(keepingUnsynced: 0))
        }
    }
}

func newEvent(_ order: String, _ version: Int64, type: String = "OrderPlaced", payload: String = #"{"v":1}"#) -> NewEvent {
    NewEvent(orderID: order, version: version, type: type, payload: payload)
}

/// A peer's event, as its log would have written it.
func peerEvent(_ origin: String, _ offset: Int64, order: String, version: Int64, type: String = "PaymentReceived") -> EventRecord {
    EventRecord(
        origin: origin, offset: offset, orderID: order, version: version, type: type, payload: #"{"v":1}"#,
        eventID: EventID.make(origin: origin, logID: "feed", offset: offset), recordedAt: 1_600_000_000_000)
}

/// One test at a time: run side by side with every other suite at the
/// start of `swift test`, this suite's SQLite logs (a few descriptors each)
/// took the test process near the ~1,350 open descriptors at which Swift
/// 6.3's `Process.run()` crashes (see the README).
@Suite(.serialized) struct LogStoreContractTests {
    @Test(arguments: StoreKind.allCases)
    func appendAssignsDenseOffsetsIdsAndTheClocksTime(kind: StoreKind) async throws {
        let folder = try TemporaryFolder()
        let store = try StoreUnderTest(kind, folder: folder.path)
        let log = store.log
        let first = try await log.append(AppendRequest(events: [newEvent("o1", 1), newEvent("o1", 2, type: "PaymentReceived")]))
        let second = try await log.append(AppendRequest(events: [newEvent("o2", 1)]))
        #expect(first.map(\.offset) == [1, 2])
        #expect(second.map(\.offset) == [3])
        #expect(log.committedOffset == 3)
        let all = first + second
        #expect(all.allSatisfy { $0.origin == "api-1" && $0.isIntact && $0.recordedAt == 1_700_000_000_000 && $0.term == 0 })
        #expect(all.allSatisfy { EventID.spells($0.eventID, origin: "api-1", offset: $0.offset) })
        #expect(all.allSatisfy { $0.eventID.contains(log.logID) })
        #expect(try await log.scan(origin: nil, fromOffset: 1, limit: 10) == all)
        #expect(try await log.scan(origin: "api-1", fromOffset: 2, limit: 1) == [first[1]])
        log.close()
    }

    @Test(arguments: StoreKind.allCases)
    func anInvalidAppendIsRefusedAndWritesNothing(kind: StoreKind) async throws {
        let folder = try TemporaryFolder()
        let log = try StoreUnderTest(kind, folder: folder.path).log
        for bad in [newEvent("", 1), newEvent("o1", 0), NewEvent(orderID: "o1", version: 1, type: "", payload: "{}")] {
            await #expect(throws: EventLogError.self) { try await log.append(AppendRequest(events: [newEvent("o1", 1), bad])) }
        }
        #expect(try await log.scan(origin: nil, fromOffset: 1, limit: 10).isEmpty)
        #expect(log.committedOffset == 0)
        log.close()
    }

    /// What a replica tells a new term's leader: per origin, the highest
    /// offset it holds, whichever way the event came (its own append, a
    /// tail's batch, a leader's store of single events).
    @Test(arguments: StoreKind.allCases)
    func heldOffsetsNameTheHighestEventOfEachOrigin(kind: StoreKind) async throws {
        let folder = try TemporaryFolder()
        let log = try StoreUnderTest(kind, folder: folder.path).log
        #expect(try await log.heldOffsets().isEmpty)
        _ = try await log.append(AppendRequest(events: [newEvent("o1", 1), newEvent("o2", 1)]))
        // A batch whose position runs past its last event: the position is
        // not an event held.
        _ = try await log.replicate(ReplicatedBatch(origin: "api-2", events: [peerEvent("api-2", 3, order: "o1", version: 2)], throughOffset: 9))
        // Copies from a gather or a store, ahead of the tail's position.
        _ = try await log.replicate(ReplicatedBatch(origin: "", events: [peerEvent("api-3", 41, order: "o3", version: 1), peerEvent("api-3", 7, order: "o4", version: 1)], throughOffset: nil))
        #expect(try await log.heldOffsets() == ["api-1": 2, "api-2": 3, "api-3": 41])
        log.close()
    }

    @Test(arguments: StoreKind.allCases)
    func anOrdersEventsComeInVersionOrderAfterAVersion(kind: StoreKind) async throws {
        let folder = try TemporaryFolder()
        let log = try StoreUnderTest(kind, folder: folder.path).log
        _ = try await log.append(AppendRequest(events: [newEvent("o1", 1), newEvent("o2", 1)]))
        _ = try await log.append(AppendRequest(events: [newEvent("o1", 2), newEvent("o1", 3)]))
        // A peer's copy of the same order, at a version both wrote (two
        // sides of a partition): it sorts after by origin.
        _ = try await log.replicate(ReplicatedBatch(origin: "api-2", events: [peerEvent("api-2", 1, order: "o1", version: 2)], throughOffset: 1))
        let events = try await log.events(orderID: "o1", afterVersion: 0)
        #expect(events.map(\.version) == [1, 2, 2, 3])
        #expect(events.map(\.origin) == ["api-1", "api-1", "api-2", "api-1"])
        #expect(try await log.events(orderID: "o1", afterVersion: 2).map(\.version) == [3])
        #expect(try await log.events(orderID: "nope", afterVersion: 0).isEmpty)
        log.close()
    }

    @Test(arguments: StoreKind.allCases)
    func aCheckpointIsReplacedOnlyByANewerOneAndLoadReadsWhatFollowsIt(kind: StoreKind) async throws {
        let folder = try TemporaryFolder()
        let log = try StoreUnderTest(kind, folder: folder.path).log
        _ = try await log.append(AppendRequest(events: [newEvent("o1", 1), newEvent("o1", 2)], checkpoint: Checkpoint(orderID: "o1", version: 2, state: "two")))
        _ = try await log.append(AppendRequest(events: [newEvent("o1", 3)]))
        let (checkpoint, events) = try await log.load(orderID: "o1")
        #expect(checkpoint?.version == 2 && checkpoint?.state == "two" && checkpoint?.writtenAt == 1_700_000_000_000)
        #expect(events.map(\.version) == [3])
        // A late checkpoint of an old activation never replaces a newer one.
        _ = try await log.append(AppendRequest(events: [], checkpoint: Checkpoint(orderID: "o1", version: 1, state: "one")))
        #expect(try await log.checkpoint(orderID: "o1")?.state == "two")
        _ = try await log.append(AppendRequest(events: [], checkpoint: Checkpoint(orderID: "o1", version: 3, state: "three")))
        let (newer, after) = try await log.load(orderID: "o1")
        #expect(newer?.state == "three" && after.isEmpty)
        #expect(try await log.checkpoint(orderID: "o2") == nil)
        log.close()
    }

    @Test(arguments: StoreKind.allCases)
    func aCheckpointThatCountsEventsIsWrittenOnlyWhenTheLogHoldsThatMany(kind: StoreKind) async throws {
        let folder = try TemporaryFolder()
        let log = try StoreUnderTest(kind, folder: folder.path).log
        _ = try await log.replicate(ReplicatedBatch(origin: "api-2", events: [
            peerEvent("api-2", 1, order: "o1", version: 1, type: "OrderPlaced"), peerEvent("api-2", 2, order: "o1", version: 2),
        ], throughOffset: 2))
        // Built from a read that saw one event: a second is here, so no.
        _ = try await log.append(AppendRequest(events: [], checkpoint: Checkpoint(orderID: "o1", version: 2, state: "s", coveredEvents: 1)))
        #expect(try await log.checkpoint(orderID: "o1") == nil)
        _ = try await log.append(AppendRequest(events: [], checkpoint: Checkpoint(orderID: "o1", version: 2, state: "s", coveredEvents: 2)))
        #expect(try await log.checkpoint(orderID: "o1")?.version == 2)
        log.close()
    }

    @Test(arguments: StoreKind.allCases)
    func timersAreSetAndClearedWithTheirEventsSoonestFirst(kind: StoreKind) async throws {
        let folder = try TemporaryFolder()
        let log = try StoreUnderTest(kind, folder: folder.path).log
        _ = try await log.append(AppendRequest(events: [newEvent("o1", 1, type: "PaymentReceived")], deadline: ("o1", .set(5000))))
        _ = try await log.append(AppendRequest(events: [newEvent("o2", 1, type: "PaymentReceived")], deadline: ("o2", .set(3000))))
        _ = try await log.append(AppendRequest(events: [], deadline: ("o3", .set(4000))))
        #expect(try await log.deadlines(limit: 10).map(\.orderID) == ["o2", "o3", "o1"])
        #expect(try await log.deadlines(limit: 1).map(\.dueAt) == [3000])
        _ = try await log.append(AppendRequest(events: [newEvent("o2", 2)], deadline: ("o2", .clear)))
        _ = try await log.append(AppendRequest(events: [], deadline: ("o1", .set(1000))))
        #expect(try await log.deadlines(limit: 10).map(\.orderID) == ["o1", "o3"])
        #expect(try await log.deadlines(limit: 10).map(\.dueAt) == [1000, 4000])
        log.close()
    }

    @Test(arguments: StoreKind.allCases)
    func copiesAreStoredOnceAndThePositionOnlyMovesForward(kind: StoreKind) async throws {
        let folder = try TemporaryFolder()
        let log = try StoreUnderTest(kind, folder: folder.path).log
        let batch = [peerEvent("api-2", 1, order: "o1", version: 1, type: "OrderPlaced"), peerEvent("api-2", 3, order: "o2", version: 1)]
        #expect(try await log.replicate(ReplicatedBatch(origin: "api-2", events: batch, throughOffset: 4)) == 2)
        #expect(try await log.replicaPositions() == ["api-2": 4])
        // Again, and an older position: nothing new, nothing moves back.
        #expect(try await log.replicate(ReplicatedBatch(origin: "api-2", events: batch, throughOffset: 3)) == 0)
        #expect(try await log.replicaPositions() == ["api-2": 4])
        // Gathered copies of several origins move no position.
        let gathered = [peerEvent("api-3", 7, order: "o1", version: 2), peerEvent("api-2", 3, order: "o2", version: 1)]
        #expect(try await log.replicate(ReplicatedBatch(origin: "", events: gathered, throughOffset: nil)) == 1)
        #expect(try await log.replicaPositions() == ["api-2": 4])
        // Copies leave gaps (placement keeps some orders only); a scan of
        // a copied log reads what is here, in offset order.
        #expect(try await log.scan(origin: "api-2", fromOffset: 1, limit: 10).map(\.offset) == [1, 3])
        #expect(try await log.scan(origin: "api-2", fromOffset: 2, limit: 10).map(\.offset) == [3])
        #expect(try await log.scan(origin: "api-3", fromOffset: 1, limit: 10) == [gathered[0]])
        #expect(try await log.events(orderID: "o1", afterVersion: 0).map(\.origin) == ["api-2", "api-3"])
        // Copies are not the node's own log.
        #expect(log.committedOffset == 0)
        #expect(try await log.scan(origin: nil, fromOffset: 1, limit: 10).isEmpty)
        log.close()
    }

    @Test(arguments: StoreKind.allCases)
    func theRingRecordedLastIsTheRingAfterARestart(kind: StoreKind) async throws {
        let folder = try TemporaryFolder()
        let store = try StoreUnderTest(kind, folder: folder.path)
        let log = store.log
        #expect(try await log.ringMembers().isEmpty, "a new log knows no ring")
        _ = try await log.append(AppendRequest(events: [], ring: ["api-1": false, "api-2": false, "api-3": false]))
        // A change replaces the whole record: api-3 left, api-4 joined.
        _ = try await log.append(AppendRequest(events: [], ring: ["api-1": false, "api-2": false, "api-3": true, "api-4": false]))
        let reopened = try store.reopen()
        #expect(try await reopened.ringMembers() == ["api-1": false, "api-2": false, "api-3": true, "api-4": false])
        reopened.close()
    }

    @Test(arguments: StoreKind.allCases)
    func departedLogsReadAreKeptOnceEachAndSurviveARestart(kind: StoreKind) async throws {
        let folder = try TemporaryFolder()
        let store = try StoreUnderTest(kind, folder: folder.path)
        let log = store.log
        #expect(try await log.departedLogsRead().isEmpty, "a new log has read no departed member's log")
        let first = DepartedLogRead(origin: "api-5", incarnation: 3, ring: ["api-3", "api-1", "api-2"])
        let otherRing = DepartedLogRead(origin: "api-5", incarnation: 3, ring: ["api-1", "api-2"])
        let laterDeparture = DepartedLogRead(origin: "api-5", incarnation: 4, ring: ["api-1", "api-2", "api-3"])
        // Only the record: not a barrier, it is written.
        _ = try await log.append(AppendRequest(events: [], departedLogsRead: [first]))
        // Recorded again with others: kept once.
        _ = try await log.append(AppendRequest(events: [newEvent("o1", 1)], departedLogsRead: [first, otherRing, laterDeparture]))
        let reopened = try store.reopen()
        #expect(try await reopened.departedLogsRead() == [first, otherRing, laterDeparture])
        #expect(first.ring == ["api-1", "api-2", "api-3"], "a ring is kept sorted")
        #expect(try await reopened.departedLogsRead().contains(DepartedLogRead(origin: "api-5", incarnation: 3, ring: ["api-2", "api-1", "api-3"])))
        reopened.close()
    }

    @Test(arguments: StoreKind.allCases)
    func eventsKeepTheirTermAndPromisesAreStoredWithTheirTransaction(kind: StoreKind) async throws {
        let folder = try TemporaryFolder()
        let store = try StoreUnderTest(kind, folder: folder.path)
        let log = store.log
        let written = try await log.append(AppendRequest(
            events: [NewEvent(orderID: "o1", version: 1, type: "OrderPlaced", payload: "{}", term: 7)],
            promise: Promise(group: "api-1,api-2,api-3", term: 7, leader: "api-1")))
        #expect(written.map(\.term) == [7])
        _ = try await log.append(AppendRequest(events: [], promise: Promise(group: "api-1,api-2,api-3", term: 9, leader: "api-2")))
        _ = try await log.append(AppendRequest(events: [], promise: Promise(group: "api-2,api-1,api-3", term: 3, leader: "api-2")))
        // A promise never goes back.
        _ = try await log.append(AppendRequest(events: [], promise: Promise(group: "api-1,api-2,api-3", term: 8, leader: "api-3")))
        let reopened = try store.reopen()
        #expect(try await reopened.events(orderID: "o1", afterVersion: 0).map(\.term) == [7])
        #expect(try await reopened.promises() == [
            Promise(group: "api-1,api-2,api-3", term: 9, leader: "api-2"), Promise(group: "api-2,api-1,api-3", term: 3, leader: "api-2"),
        ])
        reopened.close()
    }

    @Test(arguments: StoreKind.allCases)
    func anAppendItsCheckRefusesAtTheCommitWritesNothing(kind: StoreKind) async throws {
        let folder = try TemporaryFolder()
        let log = try StoreUnderTest(kind, folder: folder.path).log
        await #expect(throws: EventLogError.refusedAtCommit("deposed")) {
            try await log.append(AppendRequest(events: [newEvent("o1", 1)], check: CommitCheck { "deposed" }))
        }
        let kept = try await log.append(AppendRequest(events: [newEvent("o1", 1)], check: CommitCheck { nil }))
        #expect(kept.map(\.offset) == [1], "a refused append takes no offset")
        #expect(try await log.scan(origin: nil, fromOffset: 1, limit: 10).count == 1)
        log.close()
    }

    /// A node that lost its log puts back what its peers hold of it, as it
    /// was, and goes on past every offset the old log used.
    @Test(arguments: StoreKind.allCases)
    func ownEventsPutBackAreReadLikeAnyAndNewOnesNeverReuseTheirOffsets(kind: StoreKind) async throws {
        let folder = try TemporaryFolder()
        let store = try StoreUnderTest(kind, folder: folder.path)
        let log = store.log
        // The old log (another log id) wrote offsets 1-3 and 5; copies of 1,
        // 2 and 5 survive on peers, whose positions reach 7.
        let old = [1, 2, 5].map { offset in
            EventRecord(
                origin: "api-1", offset: Int64(offset), orderID: "o\(offset)", version: 1, type: "OrderPlaced", payload: "{}",
                eventID: EventID.make(origin: "api-1", logID: "0ld", offset: Int64(offset)), recordedAt: 1, term: 4)
        }
        #expect(try await log.reimport(old, floor: 7) == 3)
        #expect(try await log.reimport(old, floor: 7) == 0, "putting back twice changes nothing")
        #expect(log.committedOffset == 7)
        #expect(try await log.events(orderID: "o5", afterVersion: 0) == [old[2]])
        #expect(try await log.scan(origin: nil, fromOffset: 1, limit: 10) == old)
        // Another node's events are not put back as this node's.
        await #expect(throws: EventLogError.self) { try await log.reimport([peerEvent("api-2", 1, order: "o1", version: 1)], floor: 0) }
        // The floor holds across a restart, with nothing written after it.
        let reopened = try store.reopen()
        #expect(reopened.committedOffset == 7)
        #expect(try await reopened.events(orderID: "o2", afterVersion: 0) == [old[1]])
        let next = try await reopened.append(AppendRequest(events: [newEvent("o9", 1)]))
        #expect(next.map(\.offset) == [8])
        #expect(next[0].eventID.contains(reopened.logID) && !next[0].eventID.contains("0ld"))
        reopened.close()
    }

    @Test(arguments: StoreKind.allCases)
    func anOwnEventPutBackBelowACheckpointDropsIt(kind: StoreKind) async throws {
        let folder = try TemporaryFolder()
        let log = try StoreUnderTest(kind, folder: folder.path).log
        // Copies of versions 2 and 3 arrived first and were checkpointed;
        // version 1, this node's own, comes back from a peer afterwards.
        _ = try await log.replicate(ReplicatedBatch(
            origin: "api-2", events: [peerEvent("api-2", 1, order: "o7", version: 2), peerEvent("api-2", 2, order: "o7", version: 3)],
            throughOffset: 2))
        _ = try await log.append(AppendRequest(events: [], checkpoint: Checkpoint(orderID: "o7", version: 3, state: "without v1", coveredEvents: 2)))
        #expect(try await log.checkpoint(orderID: "o7")?.version == 3)
        let own = EventRecord(
            origin: "api-1", offset: 4, orderID: "o7", version: 1, type: "PaymentReceived", payload: "{}",
            eventID: EventID.make(origin: "api-1", logID: "0ld", offset: 4), recordedAt: 1, term: 1)
        #expect(try await log.reimport([own], floor: 4) == 1)
        #expect(try await log.checkpoint(orderID: "o7") == nil, "the checkpoint does not hold the event put back")
        #expect(try await log.load(orderID: "o7").events.map(\.version) == [1, 2, 3])
        log.close()
    }

    @Test(arguments: StoreKind.allCases)
    func copiesSetTheEarlierOfAnOrdersTimers(kind: StoreKind) async throws {
        let folder = try TemporaryFolder()
        let log = try StoreUnderTest(kind, folder: folder.path).log
        _ = try await log.append(AppendRequest(events: [], deadline: ("o1", .set(5000))))
        _ = try await log.replicate(ReplicatedBatch(
            origin: "api-2", events: [peerEvent("api-2", 1, order: "o1", version: 1), peerEvent("api-2", 2, order: "o2", version: 1)],
            throughOffset: 2, deadlines: ["o1": 7000, "o2": 4000]))
        #expect(try await log.deadlines(limit: 10).map(\.orderID) == ["o2", "o1"])
        #expect(try await log.deadlines(limit: 10).map(\.dueAt) == [4000, 5000], "a later timer from a copy leaves the earlier one")
        _ = try await log.replicate(ReplicatedBatch(origin: "", events: [peerEvent("api-3", 1, order: "o1", version: 2)], throughOffset: nil, deadlines: ["o1": 3000]))
        #expect(try await log.deadlines(limit: 10).map(\.dueAt) == [3000, 4000])
        log.close()
    }

    @Test(arguments: StoreKind.allCases)
    func aBadBatchIsRefusedWholeAndChangesNothing(kind: StoreKind) async throws {
        let folder = try TemporaryFolder()
        let log = try StoreUnderTest(kind, folder: folder.path).log
        let good = peerEvent("api-2", 1, order: "o1", version: 1)
        var corrupt = peerEvent("api-2", 2, order: "o1", version: 2)
        corrupt.payload = #"{"v":2}"#
        var misnamed = peerEvent("api-2", 2, order: "o1", version: 2)
        misnamed.eventID = EventID.make(origin: "api-2", logID: "feed", offset: 9)
        misnamed.checksum = misnamed.computedChecksum
        let own = peerEvent("api-1", 1, order: "o1", version: 2)
        let other = peerEvent("api-3", 2, order: "o1", version: 2)
        for bad in [corrupt, misnamed, own, other] {
            await #expect(throws: EventLogError.self) {
                try await log.replicate(ReplicatedBatch(origin: "api-2", events: [good, bad], throughOffset: 2))
            }
        }
        await #expect(throws: EventLogError.self) {
            try await log.replicate(ReplicatedBatch(origin: "api-1", events: [], throughOffset: 2))
        }
        #expect(try await log.replicaPositions().isEmpty)
        #expect(try await log.events(orderID: "o1", afterVersion: 0).isEmpty)
        log.close()
    }

    /// A leader writes an order's last event again in its own term
    /// (`Transactor.anchorHead`): at the version a checkpoint may hold. The
    /// checkpoint did not fold it, and the new event supersedes what a
    /// deposed leader wrote above that version, so the checkpoint goes.
    /// (Found by seed 71178, `--acks all --customers-per-second 40 --faults
    /// pause,oneway,bridge,fsync,messages`: the checkpoint hid the new
    /// term's event, a refund it superseded was folded in, and the held
    /// payment was never refunded.)
    @Test(arguments: StoreKind.allCases)
    func anOwnEventAtOrBelowACheckpointDropsIt(kind: StoreKind) async throws {
        let folder = try TemporaryFolder()
        let log = try StoreUnderTest(kind, folder: folder.path).log
        _ = try await log.append(AppendRequest(events: [newEvent("o1", 1)], checkpoint: Checkpoint(orderID: "o1", version: 1, state: "s")))
        _ = try await log.append(AppendRequest(events: [newEvent("o2", 1), newEvent("o2", 2)], checkpoint: Checkpoint(orderID: "o2", version: 2, state: "s")))
        _ = try await log.append(AppendRequest(events: [newEvent("o1", 1, type: "PaymentReceived")]))
        #expect(try await log.checkpoint(orderID: "o1") == nil)
        let (checkpoint, events) = try await log.load(orderID: "o1")
        #expect(checkpoint == nil && events.count == 2)
        // Above it, as every other command writes: the checkpoint stays.
        _ = try await log.append(AppendRequest(events: [newEvent("o2", 3)]))
        #expect(try await log.checkpoint(orderID: "o2")?.version == 2)
        log.close()
    }

    @Test(arguments: StoreKind.allCases)
    func aNewCopyAtOrBelowACheckpointDropsIt(kind: StoreKind) async throws {
        let folder = try TemporaryFolder()
        let log = try StoreUnderTest(kind, folder: folder.path).log
        _ = try await log.append(AppendRequest(events: [newEvent("o1", 1), newEvent("o1", 2)], checkpoint: Checkpoint(orderID: "o1", version: 2, state: "s")))
        // The other side of a partition wrote version 2 too: the checkpoint
        // did not fold it, so the next activation replays the order whole.
        _ = try await log.replicate(ReplicatedBatch(origin: "api-2", events: [peerEvent("api-2", 1, order: "o1", version: 2)], throughOffset: 1))
        #expect(try await log.checkpoint(orderID: "o1") == nil)
        let (checkpoint, events) = try await log.load(orderID: "o1")
        #expect(checkpoint == nil && events.count == 3)
        log.close()
    }

    @Test(arguments: StoreKind.allCases)
    func commitObserversHearTheNewestOwnOffsetOnceDurable(kind: StoreKind) async throws {
        let folder = try TemporaryFolder()
        let log = try StoreUnderTest(kind, folder: folder.path).log
        let heard = Mutex<[Int64]>([])
        log.onCommit { offset in heard.withLock { $0.append(offset) } }
        _ = try await log.append(AppendRequest(events: [newEvent("o1", 1), newEvent("o1", 2)]))
        #expect(heard.withLock { $0 }.last == 2)
        // Copies and empty appends move no own offset: no new call says so.
        _ = try await log.replicate(ReplicatedBatch(origin: "api-2", events: [peerEvent("api-2", 1, order: "o1", version: 3)], throughOffset: 1))
        try await log.barrier()
        _ = try await log.append(AppendRequest(events: [newEvent("o2", 1)]))
        #expect(heard.withLock { $0 }.last == 3)
        #expect(heard.withLock { $0 }.allSatisfy { $0 <= log.committedOffset })
        log.close()
    }

    @Test(arguments: StoreKind.allCases)
    func aClosedLogRefusesWrites(kind: StoreKind) async throws {
        let folder = try TemporaryFolder()
        let log = try StoreUnderTest(kind, folder: folder.path).log
        _ = try await log.append(AppendRequest(events: [newEvent("o1", 1)]))
        log.close()
        await #expect(throws: EventLogError.closed) { try await log.append(AppendRequest(events: [newEvent("o1", 2)])) }
    }

    @Test(arguments: StoreKind.allCases)
    func whatWasAnsweredSurvivesAReopenAndOffsetsContinue(kind: StoreKind) async throws {
        let folder = try TemporaryFolder()
        let store = try StoreUnderTest(kind, folder: folder.path)
        let log = store.log
        let written = try await log.append(AppendRequest(
            events: [newEvent("o1", 1), newEvent("o1", 2)], checkpoint: Checkpoint(orderID: "o1", version: 2, state: "s"), deadline: ("o1", .set(9))))
        _ = try await log.replicate(ReplicatedBatch(origin: "api-2", events: [peerEvent("api-2", 5, order: "o3", version: 1)], throughOffset: 5))
        let logID = log.logID
        let reopened = try store.reopen()
        #expect(reopened.logID == logID)
        #expect(reopened.committedOffset == 2)
        #expect(try await reopened.scan(origin: nil, fromOffset: 1, limit: 10) == written)
        #expect(try await reopened.checkpoint(orderID: "o1")?.state == "s")
        #expect(try await reopened.deadlines(limit: 10).map(\.dueAt) == [9])
        #expect(try await reopened.replicaPositions() == ["api-2": 5])
        #expect(try await reopened.events(orderID: "o3", afterVersion: 0).count == 1)
        let next = try await reopened.append(AppendRequest(events: [newEvent("o2", 1)]))
        #expect(next.map(\.offset) == [3])
        reopened.close()
    }

    @Test(arguments: StoreKind.allCases)
    func concurrentAppendsAllCommitWithDenseUniqueOffsets(kind: StoreKind) async throws {
        let folder = try TemporaryFolder()
        let log = try StoreUnderTest(kind, folder: folder.path).log
        let offsets = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for index in 0..<200 {
                group.addTask { try await log.append(AppendRequest(events: [newEvent("o\(index)", 1), newEvent("o\(index)", 2)])).map(\.offset) }
            }
            var all: [[Int64]] = []
            for try await offsets in group { all.append(offsets) }
            return all
        }
        #expect(offsets.allSatisfy { $0.count == 2 && $0[1] == $0[0] + 1 }, "a request's events are contiguous")
        #expect(offsets.flatMap { $0 }.sorted() == Array(1...400))
        #expect(log.committedOffset == 400)
        log.close()
    }
}
