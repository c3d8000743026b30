import Foundation
import Testing

/// The balancer in front of real API nodes: it finds them through
/// membership, spreads requests, and hides the SIGKILL of a node from the
/// clients.
@Suite(.serialized) struct BalancerTests {
    static func startBalancer(_ cluster: TestCluster, strategy: String) async throws -> (process: OrderlyProcess, http: String) {
        try await cluster.startRole(["balancer", "--http", "127.0.0.1:0", "--strategy", strategy], log: "balancer-\(strategy).log")
    }

    static func backends(_ balancer: String) async throws -> [String: [String: Any]] {
        let list = try await HTTP.send(.GET, "http://\(balancer)/balancer").body["backends"] as? [[String: Any]] ?? []
        return Dictionary(uniqueKeysWithValues: list.compactMap { item in (item["id"] as? String).map { ($0, item) } })
    }

    @Test func aKilledNodeCostsTheClientsNothingAndAJoiningNodeGetsTraffic() async throws {
        let cluster = try TestCluster()
        defer { cluster.stopAll(signal: SIGKILL) }
        for id in ["api-1", "api-2", "api-3"] { try await cluster.start(id) }
        try await cluster.waitForView(["api-1": "alive", "api-2": "alive", "api-3": "alive"], on: cluster.ids)
        let balancer = try await Self.startBalancer(cluster, strategy: "round-robin")
        defer { balancer.process.stop(signal: SIGKILL) }
        try await waitFor("the balancer to find three healthy backends", timeout: .seconds(20)) {
            let backends = try await Self.backends(balancer.http)
            return backends.count == 3 && backends.values.allSatisfy { $0["state"] as? String == "healthy" }
        }

        // Round-robin: reads spread evenly.
        for _ in 0..<30 {
            #expect(try await HTTP.send(.GET, "http://\(balancer.http)/products/SKU-00001").status == 200)
        }
        let spread = try await Self.backends(balancer.http).mapValues { $0["requests"] as? Int ?? 0 }
        #expect(spread.values.allSatisfy { $0 == 10 }, "\(spread)")

        // Continuous orders and payments through the balancer; api-2 is
        // SIGKILLed mid-stream and restarted later.
        let stop = Locked(false)
        let errors = Locked<[String]>([])
        let acknowledged = Locked<[String: Int]>([:])
        let sent = Locked(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in 0..<8 {
                group.addTask {
                    var index = 0
                    while !stop.value {
                        let order = "b-\(client)-\(index)"
                        index += 1
                        let placed = try await HTTP.send(
                            .POST, "http://\(balancer.http)/orders", #"{"id":"\#(order)","customer":"c","lines":[{"sku":"SKU-00003","qty":1}]}"#,
                            timeout: .seconds(20))
                        guard placed.status == 201 || placed.status == 200, let total = placed.body["total_cents"] as? Int else {
                            errors.withLock { $0.append("\(order) place: \(placed.status) \(placed.body)") }
                            continue
                        }
                        let paid = try await HTTP.send(
                            .POST, "http://\(balancer.http)/orders/\(order)/payments", #"{"id":"p","amount_cents":\#(total)}"#, timeout: .seconds(20))
                        if paid.status == 201 || paid.status == 200 {
                            acknowledged.withLock { $0[order] = total }
                        } else {
                            errors.withLock { $0.append("\(order) pay: \(paid.status) \(paid.body)") }
                        }
                        sent.withLock { $0 += 1 }
                    }
                }
            }
            group.addTask {
                defer { stop.withLock { $0 = true } }
                try await waitFor("some orders before the kill", timeout: .seconds(30)) { sent.value >= 40 }
                cluster.stop("api-2", signal: SIGKILL)
                let before = sent.value
                try await waitFor("orders while api-2 is dead", timeout: .seconds(60)) { sent.value >= before + 80 }
                try await cluster.start("api-2")
                let back = sent.value
                try await waitFor("orders after api-2 is back", timeout: .seconds(60)) { sent.value >= back + 40 }
            }
            try await group.waitForAll()
        }
        #expect(errors.value.isEmpty, "client-visible errors: \(errors.value.prefix(5))")
        for (order, total) in acknowledged.value {
            let reply = try await HTTP.send(.GET, "http://\(balancer.http)/orders/\(order)")
            #expect(reply.status == 200 && reply.body["paid_cents"] as? Int == total, "\(order): \(reply.body)")
        }

        // A node that joins gets traffic without a restart of the balancer.
        try await cluster.start("api-4")
        try await waitFor("the balancer to find api-4", timeout: .seconds(20)) {
            try await Self.backends(balancer.http)["api-4"]?["state"] as? String == "healthy"
        }
        try await waitFor("api-4 to get requests", timeout: .seconds(20)) {
            _ = try await HTTP.send(.GET, "http://\(balancer.http)/products/SKU-00001")
            return try await Self.backends(balancer.http)["api-4"]?["requests"] as? Int ?? 0 > 0
        }
        let stats = try await HTTP.send(.GET, "http://\(balancer.http)/stats/summary")
        #expect(stats.status == 503, "no stats node configured: \(stats.body)")
    }
}
