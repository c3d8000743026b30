import BalancerCore
import HashRing
import OrderDomain
import Testing

@Suite struct BackendPoolTests {
    static func pool(_ strategy: Strategy, weights: [Int] = [1, 1, 1]) -> BackendPool {
        var pool = BackendPool(strategy: strategy)
        pool.update(weights.enumerated().map { Backend(id: "api-\($0.offset + 1)", address: "h:\($0.offset)", weight: $0.element) })
        return pool
    }

    static func counts(_ pool: inout BackendPool, picks: Int, nowMs: Int64 = 0, orderID: (Int) -> String? = { _ in nil }) -> [String: Int] {
        var random = SplitMix64(seed: 7)
        var counts: [String: Int] = [:]
        for index in 0..<picks { counts[pool.pick(orderID: orderID(index), nowMs: nowMs, random: &random)!, default: 0] += 1 }
        return counts
    }

    @Test func roundRobinTakesTurns() {
        var pool = Self.pool(.roundRobin)
        var random = SplitMix64(seed: 1)
        let picks = (0..<6).map { _ in pool.pick(orderID: nil, nowMs: 0, random: &random)! }
        #expect(picks == ["api-1", "api-2", "api-3", "api-1", "api-2", "api-3"])
    }

    @Test func smoothWeightedFollowsTheWeightsAndSpreadsThePicks() {
        var pool = Self.pool(.weighted, weights: [5, 1, 1])
        var random = SplitMix64(seed: 1)
        let picks = (0..<7).map { _ in pool.pick(orderID: nil, nowMs: 0, random: &random)! }
        #expect(picks.filter { $0 == "api-1" }.count == 5)
        // Smooth: the heavy backend never gets all five in a row.
        #expect(picks != ["api-1", "api-1", "api-1", "api-1", "api-1", "api-2", "api-3"])
        var many = Self.pool(.weighted, weights: [3, 2, 1])
        #expect(Self.counts(&many, picks: 600) == ["api-1": 300, "api-2": 200, "api-3": 100])
    }

    @Test func weightsFromLatencyFavourTheFasterBackend() {
        var pool = BackendPool(strategy: .weighted, weightsFromLatency: true)
        pool.update([Backend(id: "fast", address: "a"), Backend(id: "slow", address: "b")])
        pool.requestEnded("fast", failed: false, latencyMs: 2, nowMs: 0)
        pool.requestEnded("slow", failed: false, latencyMs: 10, nowMs: 0)
        let counts = Self.counts(&pool, picks: 600)
        #expect(counts["fast", default: 0] == 500 && counts["slow", default: 0] == 100, "\(counts)")
    }

    @Test func leastOutstandingAvoidsTheBusyBackend() {
        var pool = Self.pool(.leastOutstanding)
        for _ in 0..<50 { pool.requestStarted("api-1") }
        let counts = Self.counts(&pool, picks: 300)
        #expect(counts["api-1", default: 0] == 0, "\(counts)")
        #expect(counts["api-2", default: 0] > 100 && counts["api-3", default: 0] > 100, "\(counts)")
    }

    @Test func ringSendsAnOrderToItsLeaderAndFallsBackWhenItIsOut() {
        var pool = Self.pool(.ring)
        let ring = HashRing(nodes: ["api-1": 1, "api-2": 1, "api-3": 1])
        var random = SplitMix64(seed: 1)
        for index in 0..<100 {
            let order = "o-\(index)"
            #expect(pool.pick(orderID: order, nowMs: 0, random: &random) == ring.preferenceList(for: order, count: 3).first)
        }
        // The leader of o-1 is ejected: its next replica takes the order.
        let list = ring.preferenceList(for: "o-1", count: 3)
        for _ in 0..<3 { pool.requestEnded(list[0], failed: true, latencyMs: 1, nowMs: 0) }
        #expect(pool.pick(orderID: "o-1", nowMs: 10, random: &random) == list[1])
    }

    @Test func failuresEjectForAGrowingTimeAndTheBackendComesBack() {
        var pool = Self.pool(.roundRobin)
        let config = pool.config
        for _ in 0..<config.ejectAfterFailures { pool.requestEnded("api-2", failed: true, latencyMs: 1, nowMs: 1_000) }
        #expect(pool.eligible(nowMs: 1_500) == ["api-1", "api-3"])
        #expect(pool.eligible(nowMs: 1_000 + config.ejectionBaseMs) == ["api-1", "api-2", "api-3"], "the ejection ends")
        // Failing again on its trial: ejected twice as long.
        let again = 1_000 + config.ejectionBaseMs
        for _ in 0..<config.ejectAfterFailures { pool.requestEnded("api-2", failed: true, latencyMs: 1, nowMs: again) }
        #expect(!pool.eligible(nowMs: again + config.ejectionBaseMs).contains("api-2"))
        #expect(pool.eligible(nowMs: again + 2 * config.ejectionBaseMs).contains("api-2"))
        pool.requestEnded("api-2", failed: false, latencyMs: 1, nowMs: again + 2 * config.ejectionBaseMs)
        #expect(pool.entries["api-2"]!.health.state == .healthy)
    }

    @Test func activeChecksTakeABackendOutAndBackWithSlowStart() {
        var pool = Self.pool(.weighted)
        let config = pool.config
        for second in 0..<config.fall { pool.activeCheck("api-3", passed: false, nowMs: Int64(second) * 1000) }
        #expect(!pool.eligible(nowMs: 5_000).contains("api-3"))
        for second in 0..<config.rise { pool.activeCheck("api-3", passed: true, nowMs: 10_000 + Int64(second) * 1000) }
        let back = 10_000 + Int64(config.rise - 1) * 1000
        #expect(pool.eligible(nowMs: back).contains("api-3"))
        // Slow start: a small share at first, a full one later.
        let early = Self.counts(&pool, picks: 210, nowMs: back)
        #expect(early["api-3", default: 0] < 20, "\(early)")
        let later = Self.counts(&pool, picks: 300, nowMs: back + config.slowStartMs)
        #expect(later["api-3", default: 0] == 100, "\(later)")
    }

    @Test func neverAllEjected() {
        var pool = Self.pool(.roundRobin)
        for id in ["api-1", "api-2", "api-3"] {
            for _ in 0..<5 { pool.requestEnded(id, failed: true, latencyMs: 1, nowMs: 0) }
        }
        #expect(pool.eligible(nowMs: 1) == ["api-1", "api-2", "api-3"])
    }

    @Test func discoveryAddsAndDropsBackends() {
        var pool = Self.pool(.roundRobin)
        pool.update([Backend(id: "api-1", address: "h:0"), Backend(id: "api-4", address: "h:4")])
        #expect(pool.eligible(nowMs: 0) == ["api-1", "api-4"])
    }
}
