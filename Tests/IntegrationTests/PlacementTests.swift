import Foundation
import Testing

/// Placement with more nodes than the replication factor: each node keeps
/// only the orders whose preference list holds it, and backfills the ones
/// it gains when a node joins or leaves the ring.
@Suite(.serialized) struct PlacementTests {
    static func waitForBackfill(_ cluster: TestCluster, ring: Int) async throws {
        for id in cluster.ids {
            try await waitFor("\(id) to backfill a ring of \(ring)", timeout: .seconds(30)) {
                let view = try await HTTP.send(.GET, "http://\(cluster.http(id))/cluster").body
                let nodes = (view["ring"] as? [String: Any])?["nodes"] as? [Any] ?? []
                return nodes.count == ring && (view["replication"] as? [String: Any])?["backfilled"] as? Bool == true
            }
        }
    }

    /// nil when every replica of every order holds all of its events and
    /// `newcomer` holds no order outside its lists; else what is wrong.
    static func placementViolation(_ cluster: TestCluster, orders: [String], newcomer: String?) async throws -> String? {
        let logs = try Dictionary(uniqueKeysWithValues: cluster.ids.map { ($0, try cluster.log($0)) })
        for order in orders {
            let placement = try await HTTP.send(.GET, "http://\(cluster.http(cluster.ids[0]))/cluster?order=\(order)").body["order"] as? [String: Any]
            let list = placement?["preference_list"] as? [String] ?? []
            guard list.count == 3 else { return "\(order) has preference list \(list)" }
            var held: [String: Set<String>] = [:]
            for (id, log) in logs { held[id] = Set(try await log.events(orderID: order).map(\.eventID)) }
            let all = list.reduce(into: Set<String>()) { $0.formUnion(held[$1] ?? []) }
            for id in list where held[id] != all {
                return "\(id) holds \(held[id]?.count ?? 0) of the \(all.count) events of \(order) (list \(list))"
            }
            if let newcomer, !list.contains(newcomer), held[newcomer]?.isEmpty == false {
                return "\(newcomer) holds \(order) though its list is \(list)"
            }
        }
        return nil
    }

    /// Every order reads, through every node, as acknowledged.
    static func expectServed(_ cluster: TestCluster, _ acknowledged: [String: Int]) async throws {
        for id in cluster.ids {
            for (order, paid) in acknowledged.sorted(by: { $0.key < $1.key }) {
                let reply = try await HTTP.send(.GET, "http://\(cluster.http(id))/orders/\(order)")
                #expect(reply.status == 200 && reply.body["paid_cents"] as? Int == paid, "\(order) via \(id): \(reply.status) \(reply.body)")
            }
        }
    }

    @Test func fiveNodesWithThreeReplicasKeepTheirOrdersAndBackfillWhenANodeJoinsOrLeaves() async throws {
        let cluster = try TestCluster(extraArguments: ["--replication-factor", "3"])
        defer { cluster.stopAll(signal: SIGKILL) }
        let first = ["api-1", "api-2", "api-3", "api-4"]
        for id in first { try await cluster.start(id) }
        try await cluster.waitForView(Dictionary(uniqueKeysWithValues: first.map { ($0, "alive") }), on: first)
        try await Self.waitForBackfill(cluster, ring: 4)

        // Orders through every node, half of them paid.
        let orders = (0..<40).map { "placed-\($0)" }
        var acknowledged: [String: Int] = [:]
        for (index, order) in orders.enumerated() {
            let via = cluster.http(first[index % first.count])
            let placed = try await HTTP.command("http://\(via)/orders", #"{"id":"\#(order)","customer":"c","lines":[{"sku":"SKU-00001","qty":1}]}"#)
            #expect([200, 201].contains(placed.status), "\(placed.body)")
            acknowledged[order] = 0
            if index % 2 == 0, let total = placed.body["total_cents"] as? Int {
                let paid = try await HTTP.command("http://\(via)/orders/\(order)/payments", #"{"id":"pay-\#(index)","amount_cents":\#(total)}"#)
                #expect([200, 201].contains(paid.status), "\(paid.body)")
                acknowledged[order] = total
            }
        }
        try await cluster.waitForReplicasToCatchUp()
        let fourRing = try await waitUntil("each order on exactly its replicas") {
            try await Self.placementViolation(cluster, orders: orders, newcomer: nil) == nil ? true : nil
        }
        #expect(fourRing)
        // With 4 nodes and 3 replicas, no node holds every order.
        for id in first {
            var count = 0
            for order in orders where try await !cluster.log(id).events(orderID: order).isEmpty { count += 1 }
            #expect(count > 0 && count < orders.count, "\(id) holds \(count) of \(orders.count) orders")
        }

        // A fifth node joins: it backfills the orders the ring gives it, and
        // only those.
        try await cluster.start("api-5")
        let five = first + ["api-5"]
        try await cluster.waitForView(Dictionary(uniqueKeysWithValues: five.map { ($0, "alive") }), on: five)
        try await Self.waitForBackfill(cluster, ring: 5)
        var violation: String?
        do {
            try await waitFor("placement on five nodes", timeout: .seconds(30)) {
                violation = try await Self.placementViolation(cluster, orders: orders, newcomer: "api-5")
                return violation == nil
            }
        } catch { Issue.record("\(error): \(violation ?? "")") }
        var gained = 0
        for order in orders where try await !cluster.log("api-5").events(orderID: order).isEmpty { gained += 1 }
        #expect(gained > 0 && gained < orders.count, "api-5 holds \(gained) of \(orders.count) orders")
        try await Self.expectServed(cluster, acknowledged)

        // api-2 leaves (SIGTERM): the others backfill its orders, including
        // the events api-2 wrote itself, from their copies.
        cluster.remove("api-2")
        let rest = ["api-1", "api-3", "api-4", "api-5"]
        try await cluster.waitForView(["api-2": "left"], on: rest)
        try await Self.waitForBackfill(cluster, ring: 4)
        do {
            try await waitFor("placement after api-2 left", timeout: .seconds(30)) {
                violation = try await Self.placementViolation(cluster, orders: orders, newcomer: nil)
                return violation == nil
            }
        } catch { Issue.record("\(error): \(violation ?? "")") }
        try await Self.expectServed(cluster, acknowledged)

        // Writes go on under the new ring.
        for (index, order) in orders.enumerated() where index % 2 == 1 {
            let via = cluster.http(rest[index % rest.count])
            let state = try await HTTP.send(.GET, "http://\(via)/orders/\(order)").body
            let total = state["total_cents"] as? Int ?? 0
            let paid = try await HTTP.command("http://\(via)/orders/\(order)/payments", #"{"id":"late-\#(index)","amount_cents":\#(total)}"#)
            #expect([200, 201].contains(paid.status), "\(order): \(paid.body)")
            acknowledged[order] = total
        }
        try await Self.expectServed(cluster, acknowledged)
    }
}
