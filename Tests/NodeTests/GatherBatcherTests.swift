import LogStorage
import NodeRuntime
import OrderDomain
import Replication
import Synchronization
import Testing
import Wire

@testable import Node

/// Gathering fetches to one replica are batched while one is in flight, and
/// each order still gets exactly its own answer.
@Suite struct GatherBatcherTests {
    /// A replica that holds one event per order whose id ends in an even
    /// digit, grants `term` for every order, and answers each fetch only
    /// when the test releases it.
    final class HeldReplica: PeerNetwork, @unchecked Sendable {
        let filter = PeerFilter()
        let term = Term(number: 7, leader: "api-1")
        let fetches = Mutex<[[String]]>([])
        private let waiting = Mutex<[CheckedContinuation<Void, Never>]>([])
        let refuse: Bool

        init(refuse: Bool = false) { self.refuse = refuse }

        func send(_ message: PeerMessage, to address: String, timeout: Duration) async {}
        func closeAll() async {}

        func call(_ request: PeerRequest, to address: String, timeout: Duration) async throws -> PeerReply {
            guard case .fetch(let fetch) = request, case .orders(let ids) = fetch.scope else { throw EngineError.unavailable("unexpected") }
            fetches.withLock { $0.append(ids.map(\.rawValue)) }
            await withCheckedContinuation { continuation in waiting.withLock { $0.append(continuation) } }
            if refuse { return .fetch(FetchReply(events: [], throughOffset: 0, holderLastOffset: 0, refusal: "recovering")) }
            let events = ids.filter { Int(String($0.rawValue.last!))! % 2 == 0 }.map { id in
                EventRecord(
                    origin: "api-9", offset: 1, orderID: id.rawValue, version: 1, type: "OrderPlaced", payload: "{}", eventID: "e-\(id.rawValue)",
                    recordedAt: 1)
            }
            return .fetch(FetchReply(events: events, throughOffset: 0, holderLastOffset: 0, refusal: nil, promises: ids.map { _ in term }))
        }

        /// Answers the fetches in flight; how many it answered.
        func release() -> Int {
            let all = waiting.withLock { waiting in defer { waiting = [] }; return waiting }
            for continuation in all { continuation.resume() }
            return all.count
        }

        var fetchCount: Int { fetches.withLock { $0.count } }
    }

    final class Results: Sendable {
        private let answers = Mutex<[String: [String: GatherBatcher.Answer]]>([:])
        func set(_ order: String, _ value: [String: GatherBatcher.Answer]) { answers.withLock { $0[order] = value } }
        var all: [String: [String: GatherBatcher.Answer]] { answers.withLock { $0 } }
    }

    /// Polls `condition` until it holds; fails the test after 10 s.
    func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while !condition() {
            guard clock.now < deadline else {
                Issue.record("timed out waiting for \(what)")
                throw CancellationError()
            }
            await Task.yield()
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    @Test func ordersAskedWhileAFetchIsInFlightGoTogetherInTheNextAndEachGetsItsOwnAnswer() async throws {
        let replica = HeldReplica()
        let batcher = GatherBatcher(network: replica, spawner: GlobalTaskSpawner(), timeout: .seconds(10), batchMax: 4)
        let results = Results()
        let replicas = [(id: "api-2", address: "a2"), (id: "api-3", address: "a3")]
        let first = Task {
            let answers = await batcher.gather(ClientID("o-0")!, from: replicas, follower: "api-1")
            results.set("o-0", answers)
        }
        // The first order goes at once, to each replica.
        try await waitUntil("the first fetch to each replica") { replica.fetchCount == 2 }
        var tasks = [first]
        for n in 1...6 {
            tasks.append(Task {
                let answers = await batcher.gather(ClientID("o-\(n)")!, from: replicas, follower: "api-1")
                results.set("o-\(n)", answers)
            })
        }
        // Six more wait while the first fetches are in flight: they go four
        // and two per replica, after the first answers.
        try await waitUntil("six orders queued for each replica") { batcher.waiting(at: "a2") == 6 && batcher.waiting(at: "a3") == 6 }
        #expect(replica.fetchCount == 2, "nothing more goes while a fetch to the replica is in flight")
        var released = 0
        try await waitUntil("six fetches answered") {
            released += replica.release()
            return released == 6
        }
        for task in tasks { await task.value }
        let fetched = replica.fetches.withLock { $0 }
        #expect(fetched.count == 6, "\(fetched)")
        #expect(fetched.map(\.count).sorted() == [1, 1, 2, 2, 4, 4])
        #expect(Set(fetched.flatMap { $0 }).count == 7)
        let all = results.all
        for n in 0...6 {
            let answers = try #require(all["o-\(n)"])
            #expect(Set(answers.keys) == ["api-2", "api-3"])
            for answer in answers.values {
                #expect(answer.promise == replica.term)
                #expect(answer.events.map(\.orderID) == (n % 2 == 0 ? ["o-\(n)"] : []), "o-\(n) gets its own events only")
            }
        }
    }

    @Test func aRefusedFetchIsNoAnswerForEveryOrderInIt() async throws {
        let replica = HeldReplica(refuse: true)
        let batcher = GatherBatcher(network: replica, spawner: GlobalTaskSpawner(), timeout: .seconds(10))
        let task = Task { await batcher.gather(ClientID("o-2")!, from: [(id: "api-2", address: "a2")], follower: "api-1") }
        try await waitUntil("the fetch to be answered") { replica.release() == 1 }
        #expect(await task.value.isEmpty)
        #expect(await batcher.gather(ClientID("o-3")!, from: [], follower: "api-1").isEmpty, "no replica: nothing to wait for")
    }
}
