import Foundation
import Synchronization
import Testing

/// A rolling upgrade with real processes: three nodes start as the release
/// before (`--protocol-max 7`), a balancer in front, customers placing and
/// paying orders through it; then each node in turn is stopped with SIGTERM
/// and started as this release. The cluster speaks 7 until the last node is
/// new, then 8; no customer sees an error once retries are done, and every
/// acknowledged order and payment is held by every node.
@Suite(.serialized) struct RollingUpgradeTests {
    /// Customers through the balancer: each places an order and pays it,
    /// retrying a refused or failed request with the same ids (as a client
    /// of a real shop does) for up to a minute before it gives up.
    final class Customers: Sendable {
        let placed = Mutex<[String: Int]>([:])
        let paid = Mutex<[String]>([])
        let retries = Atomic(0)
        let gaveUp = Mutex<[String]>([])
        let stop = Atomic(false)

        func send(_ url: String, _ body: String, what: String) async -> HTTP.Reply? {
            let deadline = ContinuousClock.now + .seconds(60)
            var last = "no answer"
            while ContinuousClock.now < deadline {
                if let reply = try? await HTTP.send(.POST, url, body, timeout: .seconds(10)) {
                    if reply.status == 200 || reply.status == 201 { return reply }
                    last = "\(reply.status) \(reply.body)"
                    // A 4xx other than a conflict with a leader change is the
                    // client's own fault: no retry makes it right.
                    if (400..<500).contains(reply.status) && reply.status != 409 && reply.status != 429 { break }
                }
                retries.add(1, ordering: .relaxed)
                try? await Task.sleep(for: .milliseconds(100))
            }
            gaveUp.withLock { $0.append("\(what): \(last)") }
            return nil
        }

        func run(_ balancer: String, client: Int) async {
            var index = 0
            while !stop.load(ordering: .relaxed) {
                index += 1
                let order = "up-\(client)-\(index)"
                guard let reply = await send(
                    "http://\(balancer)/orders", #"{"id":"\#(order)","customer":"c","lines":[{"sku":"SKU-00004","qty":1}]}"#, what: "place \(order)"),
                    let total = reply.body["total_cents"] as? Int
                else { continue }
                placed.withLock { $0[order] = total }
                if await send("http://\(balancer)/orders/\(order)/payments", #"{"id":"pay-\#(order)","amount_cents":\#(total)}"#, what: "pay \(order)")
                    != nil
                {
                    paid.withLock { $0.append(order) }
                }
            }
        }

        var count: Int { placed.withLock { $0.count } }
    }

    /// `protocol` of a node's GET /cluster.
    static func protocolView(_ cluster: TestCluster, _ id: String) async throws -> [String: Any] {
        try #require(try await HTTP.send(.GET, "http://\(cluster.http(id))/cluster").body["protocol"] as? [String: Any])
    }

    static func clusterVersions(_ cluster: TestCluster) async throws -> [String: Int] {
        var versions: [String: Int] = [:]
        for id in cluster.ids { versions[id] = try await protocolView(cluster, id)["cluster"] as? Int }
        return versions
    }

    @Test func aClusterUpgradedOneNodeAtATimeLosesAndRefusesNothing() async throws {
        let cluster = try TestCluster()
        defer { cluster.stopAll(signal: SIGKILL) }
        let ids = ["api-1", "api-2", "api-3"]
        for id in ids { try await cluster.start(id, extra: ["--protocol-max", "7"]) }
        try await cluster.waitForView(["api-1": "alive", "api-2": "alive", "api-3": "alive"], on: ids)
        #expect(try await Self.protocolView(cluster, "api-1")["speaks"] as? [Int] == [7, 7])
        try await waitFor("every node to run the cluster at version 7") { try await Self.clusterVersions(cluster) == ["api-1": 7, "api-2": 7, "api-3": 7] }

        let balancer = try await cluster.startRole(["balancer", "--http", "127.0.0.1:0", "--strategy", "ring"], log: "balancer.log")
        defer { balancer.process.stop(signal: SIGKILL) }
        try await waitFor("the balancer to find three ready backends") {
            let list = try await HTTP.send(.GET, "http://\(balancer.http)/balancer").body["backends"] as? [[String: Any]] ?? []
            return list.count == 3 && list.allSatisfy { $0["state"] as? String == "healthy" }
        }

        let customers = Customers()
        let load = Task {
            await withTaskGroup(of: Void.self) { group in
                for client in 0..<4 { group.addTask { await customers.run(balancer.http, client: client) } }
            }
        }
        // A failed wait must not leave the customers running after the test.
        defer { customers.stop.store(true, ordering: .relaxed) }
        try await waitFor("30 orders before the upgrade", timeout: .seconds(120)) { customers.count >= 30 }

        for (step, id) in ids.enumerated() {
            cluster.stop(id, signal: SIGTERM)
            #expect(!cluster.process(id).process.isRunning, "\(id) stopped on SIGTERM")
            try await cluster.start(id)
            try await waitFor("\(id), upgraded, to be ready", timeout: .seconds(120)) {
                (try? await HTTP.send(.GET, "http://\(cluster.http(id))/health/ready"))?.status == 200
            }
            #expect(try await Self.protocolView(cluster, id)["speaks"] as? [Int] == [7, 8])
            let upgraded = step + 1
            if upgraded < ids.count {
                // An old node still in the ring holds every node at 7.
                try await cluster.waitForView(["api-1": "alive", "api-2": "alive", "api-3": "alive"], on: ids)
                let versions = try await Self.clusterVersions(cluster)
                #expect(versions.values.allSatisfy { $0 == 7 }, "after \(upgraded) of 3 upgraded: \(versions)")
            }
            let before = customers.count
            try await waitFor("20 orders after \(id)'s upgrade", timeout: .seconds(120)) { customers.count >= before + 20 }
        }
        // Every node new: the cluster moves up, and every link speaks 8.
        try await waitFor("every node to run the cluster at version 8") { try await Self.clusterVersions(cluster) == ["api-1": 8, "api-2": 8, "api-3": 8] }
        for id in ids {
            let peers = try #require(try await Self.protocolView(cluster, id)["peers"] as? [String: [String: Int]])
            for other in ids where other != id {
                #expect(peers[other] == ["negotiated": 8, "newest": 8], "\(id) sees \(other) as \(String(describing: peers[other]))")
            }
        }

        customers.stop.store(true, ordering: .relaxed)
        await load.value
        let gaveUp = customers.gaveUp.withLock { $0 }
        #expect(gaveUp.isEmpty, "customers saw errors beyond retries: \(gaveUp.prefix(5))")
        try await cluster.waitForReplicasToCatchUp()

        // Every acknowledged order is in every node's log, once per version,
        // and every acknowledged payment has paid its order.
        let placed = customers.placed.withLock { $0 }
        let paid = customers.paid.withLock { $0 }
        for id in ids {
            let log = try cluster.log(id)
            for order in placed.keys {
                let events = try await log.events(orderID: order)
                #expect(events.contains { $0.type == "OrderPlaced" }, "\(id) lacks acknowledged order \(order)")
                #expect(Set(events.map(\.version)).count == events.count, "\(id) holds \(order) with a version twice")
            }
        }
        for order in paid {
            let reply = try await HTTP.send(.GET, "http://\(balancer.http)/orders/\(order)")
            #expect(reply.body["status"] as? String == "paid", "\(order): \(reply.status) \(reply.body)")
        }
        print("rolling upgrade: \(placed.count) orders and \(paid.count) payments acknowledged, \(customers.retries.load(ordering: .relaxed)) retries, \(gaveUp.count) given up")
    }
}
