import LogStorage
import Synchronization
import TestSupport
import Testing

/// The simulated disk: what a crash keeps and loses, and a failed sync.
/// (The SQLite log's own crash behaviour is the real-process tests' job.)
@Suite struct InMemoryLogStoreTests {
    /// Syncs run only when the test says so.
    final class Syncs: Sendable {
        private let queue = Mutex<[@Sendable () -> Void]>([])
        var count: Int { queue.withLock { $0.count } }
        func schedule(_ sync: @escaping @Sendable () -> Void) { queue.withLock { $0.append(sync) } }
        func runAll() {
            for sync in queue.withLock({ queue in defer { queue = [] }; return queue }) { sync() }
        }
    }

    func store(_ syncs: Syncs, disk: LogImage? = nil) -> InMemoryLogStore {
        InMemoryLogStore(origin: "api-1", disk: disk, newLogID: "abc", clock: { 42 }, scheduleSync: { syncs.schedule($0) })
    }

    /// Starts an append and waits until it is committed (not yet synced).
    func startAppend(_ log: InMemoryLogStore, _ syncs: Syncs, _ events: [NewEvent]) async throws -> Task<[EventRecord], any Error> {
        let before = log.unsyncedCount
        let task = Task { try await log.append(AppendRequest(events: events)) }
        try await waitFor("the append is committed") { log.unsyncedCount > before }
        return task
    }

    @Test func anAppendIsAnsweredOnlyAfterTheSyncAndReadersSeeOwnEventsOnlyThen() async throws {
        let syncs = Syncs()
        let log = store(syncs)
        let append = try await startAppend(log, syncs, [newEvent("o1", 1)])
        #expect(log.committedOffset == 0)
        #expect(try await log.events(orderID: "o1", afterVersion: 0).isEmpty, "an unsynced own event is not read by order")
        #expect(syncs.count == 1)
        syncs.runAll()
        #expect(try await append.value.map(\.offset) == [1])
        #expect(log.committedOffset == 1)
        #expect(try await log.events(orderID: "o1", afterVersion: 0).count == 1)
    }

    @Test func oneSyncCoversEveryCommitBeforeIt() async throws {
        let syncs = Syncs()
        let log = store(syncs)
        let first = try await startAppend(log, syncs, [newEvent("o1", 1)])
        let second = try await startAppend(log, syncs, [newEvent("o2", 1)])
        #expect(syncs.count == 1, "the second commit joins the sync already scheduled")
        syncs.runAll()
        #expect(try await first.value.map(\.offset) == [1])
        #expect(try await second.value.map(\.offset) == [2])
    }

    @Test func aCrashKeepsWhatWasSyncedAndAtMostAPrefixOfTheRest() async throws {
        let syncs = Syncs()
        let log = store(syncs)
        let answered = try await startAppend(log, syncs, [newEvent("o1", 1)])
        syncs.runAll()
        _ = try await answered.value
        _ = try await startAppend(log, syncs, [newEvent("o2", 1)])
        _ = try await startAppend(log, syncs, [newEvent("o3", 1)])
        let image = log.image
        #expect(image.lastOffset(of: "api-1") == 3, "readers of the file saw all three commits")

        let lost = log.crash(keepingUnsynced: 0)
        #expect(lost.allEvents.map(\.orderID) == ["o1"])
        #expect(lost.logID == "abc")

        let restarted = store(syncs, disk: lost)
        #expect(restarted.committedOffset == 1)
        // The offsets the lost events had are written again: the log went
        // back in time (what log identity must detect).
        let next = try await startAppend(restarted, syncs, [newEvent("o4", 1)])
        syncs.runAll()
        #expect(try await next.value.map(\.offset) == [2])
    }

    @Test func aCrashMayKeepAPrefixOfWhatWasNotSynced() async throws {
        let syncs = Syncs()
        let log = store(syncs)
        for order in ["o1", "o2", "o3"] { _ = try await startAppend(log, syncs, [newEvent(order, 1)]) }
        let kept = log.crash(keepingUnsynced: 2)
        #expect(kept.allEvents.map(\.orderID) == ["o1", "o2"])
        // The crashed store takes nothing more.
        await #expect(throws: EventLogError.self) { try await log.append(AppendRequest(events: [newEvent("o9", 1)])) }
    }

    @Test func aFailedSyncFailsItsWritersAndEveryLaterWrite() async throws {
        let syncs = Syncs()
        let log = store(syncs)
        let waiting = try await startAppend(log, syncs, [newEvent("o1", 1)])
        log.failNextSync()
        syncs.runAll()
        await #expect(throws: EventLogError.self) { try await waiting.value }
        #expect(log.hasFailed)
        await #expect(throws: EventLogError.self) { try await log.append(AppendRequest(events: [newEvent("o2", 1)])) }
        await #expect(throws: EventLogError.self) {
            try await log.replicate(ReplicatedBatch(origin: "api-2", events: [peerEvent("api-2", 1, order: "o1", version: 1)], throughOffset: 1))
        }
        #expect(log.committedOffset == 0)
        // Nor does it answer reads: they could return what never became
        // durable (a checkpoint of the failed transaction, say).
        await #expect(throws: EventLogError.self) { try await log.load(orderID: "o1") }
        await #expect(throws: EventLogError.self) { try await log.scan(origin: nil, fromOffset: 1, limit: 10) }
        // What it held may not be on disk: a restart starts from the synced.
        #expect(log.crash(keepingUnsynced: 5).allEvents.isEmpty)
    }

    @Test func aReplacedDiskIsANewLogWithANewID() async throws {
        let syncs = Syncs()
        let fresh = InMemoryLogStore(origin: "api-1", disk: LogImage(), newLogID: "beef", clock: { 42 }, scheduleSync: { syncs.schedule($0) })
        #expect(fresh.logID == "beef")
        #expect(fresh.committedOffset == 0)
    }
}
