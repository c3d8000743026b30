import LogStorage
import OrderDomain
import Testing

@testable import Replication

@Suite struct FeedOrderingTests {
    func event(_ origin: String, _ offset: Int64, _ order: String, _ version: Int64) -> EventRecord {
        EventRecord(
            origin: origin, offset: offset, orderID: order, version: version, type: "OrderPlaced", payload: "{}", eventID: "\(origin)-\(offset)",
            recordedAt: 0)
    }

    /// Runs `next()` until idle, answering lookups from `truth`.
    func drain(_ ordering: inout FeedOrdering, truth: [EventRecord] = []) -> [EventRecord] {
        var out: [EventRecord] = []
        while true {
            switch ordering.next() {
            case .emit(let event, _): out.append(event)
            case .lookup(let wanted):
                let orders = Set(wanted.map(\.orderID))
                ordering.learn(truth.filter { orders.contains($0.orderID) }, asked: wanted)
            case .idle: return out
            }
        }
    }

    @Test func positionTokensRoundTripAndBadOnesAreRefusedWithAReason() throws {
        let position = FeedPosition(["api-1": 12, "api-2": 0, "api-3": 9_000_000_000])
        #expect(try FeedPosition(token: position.token) == position)
        #expect(try FeedPosition(token: "") == FeedPosition())
        #expect(position.token.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }, "safe in a header and a query")
        for bad in ["a b", "%%%", "YXBpLTE6LTE" /* api-1:-1 */, "YXBpLTE6eA" /* api-1:x */, "YXBpLTE6MSxhcGktMToy" /* api-1:1,api-1:2 */] {
            #expect(throws: FeedPosition.TokenError.self) { try FeedPosition(token: bad) }
        }
        // Offsets no log reaches (one past them would overflow), logs by the
        // thousand, names no node can have: refused, not followed.
        let tooFar = FeedPosition(["api-1": Int64.max]).token
        #expect(throws: FeedPosition.TokenError.self) { try FeedPosition(token: tooFar) }
        let many = FeedPosition(Dictionary(uniqueKeysWithValues: (0...64).map { ("n\($0)", Int64(1)) })).token
        #expect(throws: FeedPosition.TokenError.self) { try FeedPosition(token: many) }
        let oddName = FeedPosition(["api 1": 3]).token
        #expect(throws: FeedPosition.TokenError.self) { try FeedPosition(token: oddName) }
    }

    @Test func oneLogGoesOutInOffsetOrderEachEventCarryingThePositionAfterIt() {
        var ordering = FeedOrdering()
        ordering.enqueue([event("a", 1, "x", 1), event("a", 2, "y", 1), event("a", 3, "x", 2)], origin: "a", through: 3)
        var positions: [[String: Int64]] = []
        while case .emit(_, let position) = ordering.next() { positions.append(position.offsets) }
        #expect(positions == [["a": 1], ["a": 2], ["a": 3]])
        #expect(ordering.drained("a", through: 3))
    }

    @Test func offsetsAReaderPassedWithoutEventsMoveThePosition() {
        var ordering = FeedOrdering(from: FeedPosition(["a": 4]))
        ordering.enqueue([], origin: "a", through: 9)
        #expect(ordering.next() == .idle)
        #expect(ordering.position.offsets["a"] == 9)
        // What a reader sends again at or before the position is not sent twice.
        ordering.enqueue([event("a", 8, "x", 1), event("a", 10, "x", 2)], origin: "a", through: 10)
        #expect(drain(&ordering).map(\.offset) == [10])
    }

    @Test func aVersionWrittenByTheNextLeaderWaitsForTheVersionBeforeIt() {
        var ordering = FeedOrdering()
        // The order's leader moved from a to b: b's version 3 is read first.
        ordering.enqueue([event("b", 1, "x", 3)], origin: "b", through: 1)
        let truth = [event("a", 1, "x", 1), event("a", 2, "x", 2), event("b", 1, "x", 3)]
        #expect(drain(&ordering, truth: truth).isEmpty, "version 2 is at a@2, not read yet")
        #expect(!ordering.drained("b", through: 1))
        ordering.enqueue([event("a", 1, "x", 1), event("a", 2, "x", 2)], origin: "a", through: 2)
        #expect(drain(&ordering, truth: truth).map(\.eventID) == ["a-1", "a-2", "b-1"])
        #expect(ordering.drained("a", through: 2) && ordering.drained("b", through: 1))
    }

    @Test func aResumedFeedFindsWhereTheVersionBeforeIsAndWaitsOnlyIfItIsStillToCome() {
        let truth = [event("a", 1, "x", 1), event("a", 2, "x", 2), event("b", 1, "x", 3)]
        // The client had a@2: version 3 can go at once.
        var had = FeedOrdering(from: FeedPosition(["a": 2]))
        had.enqueue([event("b", 1, "x", 3)], origin: "b", through: 1)
        #expect(drain(&had, truth: truth).map(\.eventID) == ["b-1"])
        // The client had only a@1: version 2 comes first.
        var hadNot = FeedOrdering(from: FeedPosition(["a": 1]))
        hadNot.enqueue([event("b", 1, "x", 3)], origin: "b", through: 1)
        #expect(drain(&hadNot, truth: truth).isEmpty)
        hadNot.enqueue([event("a", 2, "x", 2)], origin: "a", through: 2)
        #expect(drain(&hadNot, truth: truth).map(\.eventID) == ["a-2", "b-1"])
        // A lookup nobody could settle (the writer did not answer) settles
        // nothing: the event is not let go, the feed asks again.
        var unanswered = FeedOrdering(from: FeedPosition(["a": 1]))
        unanswered.enqueue([event("b", 1, "x", 3)], origin: "b", through: 1)
        guard case .lookup(let wanted) = unanswered.next() else {
            Issue.record("expected a lookup")
            return
        }
        #expect(wanted == [FeedOrdering.Wanted(orderID: "x", version: 2, writer: "b")])
        unanswered.learn([], asked: [])
        #expect(unanswered.next() == .lookup(wanted))
        // A resumed feed that has read a later copy of the version before
        // (written twice) still asks: a copy its position covers may exist.
        var twice = FeedOrdering(from: FeedPosition(["a": 30, "c": 10]))
        twice.enqueue([event("c", 80, "x", 2)], origin: "c", through: 80)
        twice.enqueue([event("b", 20, "x", 3)], origin: "b", through: 20)
        let copies = [event("a", 30, "x", 2), event("c", 80, "x", 2), event("b", 20, "x", 3)]
        guard case .lookup(let asked) = twice.next() else {
            Issue.record("expected a lookup")
            return
        }
        #expect(asked.contains(FeedOrdering.Wanted(orderID: "x", version: 2, writer: "b")), "\(asked)")
        twice.learn(copies, asked: asked)
        let sent = drain(&twice, truth: copies).map(\.eventID)
        #expect(sent.firstIndex(of: "b-20") != nil, "x v3 goes: a@30, which the client had, is a v2")
        // No node holds the version before (its only holder lost it): the
        // event is not held back for ever.
        var lost = FeedOrdering()
        lost.enqueue([event("b", 1, "x", 3)], origin: "b", through: 1)
        #expect(drain(&lost, truth: []).map(\.eventID) == ["b-1"])
    }

    @Test func aResumedFeedAsksAboutManyOrdersInOneLookup() {
        // A client had every order's first versions (on a); the next ones
        // are on b. One lookup covers them all, not one each.
        var ordering = FeedOrdering(from: FeedPosition(["a": 40]))
        let later = (1...40).map { event("b", Int64($0), "o\($0)", 2) }
        let truth = (1...40).map { event("a", Int64($0), "o\($0)", 1) } + later
        ordering.enqueue(later, origin: "b", through: 40)
        var lookups = 0
        var sent: [String] = []
        loop: while true {
            switch ordering.next() {
            case .emit(let event, _): sent.append(event.eventID)
            case .lookup(let wanted):
                lookups += 1
                let orders = Set(wanted.map(\.orderID))
                ordering.learn(truth.filter { orders.contains($0.orderID) }, asked: wanted)
            case .idle: break loop
            }
        }
        #expect(sent == later.map(\.eventID))
        #expect(lookups == 1, "\(lookups) lookups")
    }

    /// Random clusters: orders whose leaders move between origins, read in
    /// random batches (an origin's next batch only once the last one went
    /// out, as the feed's reader does), then resumed from random positions.
    /// Every event goes out once, each origin in offset order, each order
    /// in version order, and nothing waits for ever.
    @Test func randomHistoriesGoOutOnceInOrderAndResumeExactly() throws {
        for seed in UInt64(1)...300 {
            var random = SplitMix64(seed: seed)
            let origins = ["a", "b", "c", "d"].prefix(2 + Int(random.next() % 3))
            var logs: [String: [EventRecord]] = [:]
            var versions: [String: Int64] = [:]
            for _ in 0..<(20 + Int(random.next() % 80)) {
                let order = "o\(random.next() % 12)"
                let origin = origins[Int(random.next() % UInt64(origins.count))]
                let version = (versions[order] ?? 0) + 1
                versions[order] = version
                logs[origin, default: []].append(event(origin, Int64(logs[origin, default: []].count + 1), order, version))
            }
            let truth = logs.values.flatMap { $0 }
            let first = run(from: FeedPosition(), logs: logs, truth: truth, random: &random)
            try check(first.map(\.0), logs: logs, from: FeedPosition(), seed: seed)
            // Resume after a random event: exactly the rest comes.
            let cut = Int(random.next() % UInt64(first.count))
            let resumedFrom = first[cut].1
            let rest = run(from: resumedFrom, logs: logs, truth: truth, random: &random)
            try check(rest.map(\.0), logs: logs, from: resumedFrom, seed: seed, before: first[...cut].map(\.0))
        }
    }

    func run(from position: FeedPosition, logs: [String: [EventRecord]], truth: [EventRecord], random: inout SplitMix64) -> [(EventRecord, FeedPosition)] {
        var ordering = FeedOrdering(from: position)
        var read: [String: Int64] = position.offsets
        var pending: [String: Int64] = [:]
        var out: [(EventRecord, FeedPosition)] = []
        for _ in 0..<10_000 {
            // Origins whose last batch went out may read the next.
            let free = logs.keys.sorted().filter { origin in pending[origin].map { ordering.drained(origin, through: $0) } ?? true }
            let unread = free.filter { (read[$0] ?? 0) < Int64(logs[$0]!.count) }
            // Nothing more to read: done, or stuck (an origin's batch can
            // never go out); `check` tells which.
            guard !unread.isEmpty else { break }
            let origin = unread[Int(random.next() % UInt64(unread.count))]
            let from = Int(read[origin] ?? 0)
            let size = 1 + Int(random.next() % 5)
            let batch = Array(logs[origin]![from..<min(logs[origin]!.count, from + size)])
            let through = batch.last!.offset
            read[origin] = through
            pending[origin] = through
            ordering.enqueue(batch, origin: origin, through: through)
            loop: while true {
                switch ordering.next() {
                case .emit(let event, let position): out.append((event, position))
                case .lookup(let wanted):
                    let orders = Set(wanted.map(\.orderID))
                    ordering.learn(truth.filter { orders.contains($0.orderID) }, asked: wanted)
                case .idle: break loop
                }
            }
        }
        return out
    }

    func check(_ sent: [EventRecord], logs: [String: [EventRecord]], from position: FeedPosition, seed: UInt64, before: [EventRecord] = []) throws {
        let expected = Set(logs.values.flatMap { $0 }.filter { $0.offset > (position.offsets[$0.origin] ?? 0) }.map(\.eventID))
        #expect(Set(sent.map(\.eventID)) == expected, "seed \(seed): every event after the position, nothing else")
        #expect(sent.count == expected.count, "seed \(seed): each once")
        var lastOffset: [String: Int64] = [:]
        for event in sent {
            #expect(event.offset > lastOffset[event.origin] ?? 0, "seed \(seed): \(event.origin) out of offset order")
            lastOffset[event.origin] = event.offset
        }
        var seen: [String: Int64] = [:]
        for event in before + sent {
            #expect(event.version <= (seen[event.orderID] ?? 0) + 1, "seed \(seed): \(event.orderID) v\(event.version) before v\(event.version - 1)")
            seen[event.orderID] = max(seen[event.orderID] ?? 0, event.version)
        }
    }
}
