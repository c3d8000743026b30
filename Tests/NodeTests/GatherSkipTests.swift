import LogStorage
import Logging
import NodeRuntime
import OrderDomain
import Replication
import Synchronization
import Testing
import Wire

@testable import Node

/// A leader asks the replicas that granted its term for an order's events
/// before its first command, unless its own copies already reach what those
/// replicas held when they granted (`TermFrontier`) and its own log holds
/// nothing of the order: then no replica held anything of it either.
@Suite struct GatherSkipTests {
    /// Replicas that grant every term, say they hold each log up to `held`,
    /// and answer a gather with the events of `stored`.
    final class Replicas: PeerNetwork {
        let filter = PeerFilter()
        let held: [String: Int64]?
        let stored: [EventRecord]
        private let granted = Mutex<Term>(.none)
        /// Gathering fetches received, and whether grant requests asked for
        /// held offsets.
        let gathers = Mutex(0)
        let askedForHeld = Mutex<[Bool]>([])

        init(held: [String: Int64]?, stored: [EventRecord]) {
            self.held = held
            self.stored = stored
        }

        func send(_ message: PeerMessage, to address: String, timeout: Duration) async {}
        func call(_ request: PeerRequest, to address: String, timeout: Duration) async throws -> PeerReply {
            switch request {
            case .grant(let grant):
                granted.withLock { $0 = max($0, grant.term) }
                askedForHeld.withLock { $0.append(grant.wantsHeld) }
                return .grant(GrantReply(granted: true, promise: grant.term, held: grant.wantsHeld ? held : nil))
            case .fetch(let fetch):
                guard case .orders(let orders) = fetch.scope else { break }
                gathers.withLock { $0 += 1 }
                let ids = Set(orders.map(\.rawValue))
                let term = granted.withLock { $0 }
                return .fetch(FetchReply(
                    events: stored.filter { ids.contains($0.orderID) }, throughOffset: 0, holderLastOffset: 0, refusal: nil,
                    promises: orders.map { _ in term }))
            default:
                break
            }
            throw EngineError.unavailable("not in this test")
        }
        func closeAll() async {}
    }

    @Test func aLeaderSkipsTheGatherOnlyForAnOrderNobodyHeldOnceItsCopiesReachWhatTheReplicasHeld() async throws {
        let ring: Set<String> = ["api-1", "api-2", "api-3"]
        let directory = RingChangeVouchingTests.Directory(nodeID: "api-1", ring: ring, replicationFactor: 3)
        directory.peers.withLock { $0 = ["api-2": "a2", "api-3": "a3"] }
        // Three orders api-1 leads on one preference list.
        let led = (0..<2000).lazy.map { ClientID("o-\($0)")! }.filter { directory.leads($0) }
        let list = directory.preferenceList(for: try #require(led.first))
        let orders = Array(led.filter { directory.preferenceList(for: $0) == list }.prefix(3))
        try #require(orders.count == 3)
        let (known, fresh, later) = (orders[0], orders[1], orders[2])
        // api-2 placed `known` at offset 7 of its log, and the replicas hold it.
        let placed = EventRecord(
            origin: "api-2", offset: 7, orderID: known.rawValue, version: 1, type: "OrderPlaced", payload: #"{"v":1}"#,
            eventID: "api-2-x-7", recordedAt: 0, term: 0)
        let replicas = Replicas(held: ["api-1": 2, "api-2": 7, "api-3": 3], stored: [placed])
        let clock = ManualClock()
        let log = InMemoryLogStore(origin: "api-1", disk: nil, newLogID: "test", clock: { clock.wallMs }) { $0() }
        var config = ReplicationConfig()
        config.partitionMode = .consistent
        let replicator = Replicator(
            log: log, network: replicas, config: config,
            environment: NodeEnvironment(clock: clock, spawner: GlobalTaskSpawner(), randomSeed: 1), logger: Logger(label: "test"))
        replicator.attach(directory)
        replicator.state.withLock { $0.recovered = true }

        let term = try #require(try await replicator.term(for: known, above: .none))
        #expect(replicas.askedForHeld.withLock { $0 } == [true, true], "a new term's leader asks how far each replica holds each log")
        func gathers() -> Int { replicas.gathers.withLock { $0 } }

        // Its copies reach nothing yet: every order is gathered, and the
        // place of `known` comes here.
        try await replicator.gather(known, term: term)
        #expect(gathers() == 2, "one fetch to each replica")
        #expect(try await log.events(orderID: known.rawValue, afterVersion: 0).map(\.eventID) == ["api-2-x-7"])
        try await replicator.gather(fresh, term: term)
        #expect(gathers() == 4, "an order nobody holds is gathered while the copies lag")

        // Its copy of api-2's log reaches 7, of api-3's only 2: neither
        // replica is caught up (each held api-3's log to 3).
        func copied(_ origin: String, through offset: Int64) {
            replicator.state.withLock { $0.follower.noteCopy(origin: origin, through: offset, holderLastOffset: offset, nowMs: 0) }
        }
        copied("api-2", through: 7)
        copied("api-3", through: 2)
        try await replicator.gather(later, term: term)
        #expect(gathers() == 6)
        // Caught up: an order this node holds nothing of is decided without asking.
        copied("api-3", through: 3)
        try await replicator.gather(later, term: term)
        #expect(gathers() == 6, "nobody held anything of it: no gather")
        // An order it holds something of is still gathered (what it holds may
        // need putting on a majority).
        try await replicator.gather(known, term: term)
        #expect(gathers() == 8)

        // A newer term (as when the stream holds the one held): asked for
        // again, with the replicas' offsets again.
        let next = try #require(try await replicator.term(for: later, above: term))
        #expect(next > term)
        try await replicator.gather(later, term: next)
        #expect(gathers() == 8, "the copies reach what the replicas held for the new term too")
    }
}
