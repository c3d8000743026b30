import EventLog
import Foundation
import Testing

/// The warehouse against real API nodes: each paid order ships exactly once
/// across a SIGKILL of the warehouse, a cancelled order never ships, and an
/// order without stock is backordered.
@Suite(.serialized) struct WarehouseTests {
    static func startWarehouse(_ cluster: TestCluster, run: Int) async throws -> (process: OrderlyProcess, http: String) {
        try await cluster.startRole(
            ["wms", "--data", cluster.folder.path, "--http", "127.0.0.1:0", "--handling-time", "100ms"], log: "wms-\(run).log")
    }

    @Test func paidOrdersShipOnceAcrossAKillCancelledNeverAndMissingStockIsBackordered() async throws {
        let cluster = try TestCluster()
        defer { cluster.stopAll(signal: SIGKILL) }
        for id in ["api-1", "api-2", "api-3"] { try await cluster.start(id) }
        try await cluster.waitForView(["api-1": "alive", "api-2": "alive", "api-3": "alive"], on: cluster.ids)
        let api = cluster.http("api-1")

        // A product in stock and one out of stock, from the catalog.
        var inStock: (sku: String, stock: Int)?
        var outOfStock: String?
        var after: String?
        while inStock == nil || outOfStock == nil {
            let page = try await HTTP.send(.GET, "http://\(api)/products?limit=200" + (after.map { "&after=\($0)" } ?? "")).body
            for product in page["products"] as? [[String: Any]] ?? [] {
                let sku = product["sku"] as! String
                let stock = product["stock"] as! Int
                if stock == 0 && outOfStock == nil { outOfStock = sku }
                if stock >= 200 && inStock == nil { inStock = (sku, stock) }
            }
            after = page["next"] as? String
            guard after != nil else { break }
        }
        let (sku, initialStock) = try #require(inStock)
        let missing = try #require(outOfStock)

        let first = try await Self.startWarehouse(cluster, run: 1)
        defer { first.process.stop(signal: SIGKILL) }

        // 40 orders of 2 units: 0-29 paid (5 of them cancelled right after
        // paying, racing the warehouse), 30-34 cancelled unpaid, 35-39 unpaid.
        let orders = 40
        let done = Locked(0)
        async let restarted: (process: OrderlyProcess, http: String) = {
            try await waitFor("a third of the orders", timeout: .seconds(180)) { done.value >= orders / 3 }
            first.process.stop(signal: SIGKILL)
            return try await Self.startWarehouse(cluster, run: 2)
        }()
        let cancelledAfterPaying = Locked<[Int: Bool]>([:])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    for index in stride(from: worker, to: orders, by: 4) {
                        let via = cluster.http(cluster.ids[index % 3])
                        let placed = try await HTTP.command(
                            "http://\(via)/orders", #"{"id":"w-\#(index)","customer":"c","lines":[{"sku":"\#(sku)","qty":2}]}"#)
                        #expect([200, 201].contains(placed.status), "\(placed.body)")
                        let total = placed.body["total_cents"] as? Int ?? 0
                        if index < 30 {
                            let paid = try await HTTP.command("http://\(via)/orders/w-\(index)/payments", #"{"id":"p","amount_cents":\#(total)}"#)
                            #expect([200, 201].contains(paid.status), "\(paid.body)")
                            if index % 6 == 1 {
                                let cancel = try await HTTP.command("http://\(via)/orders/w-\(index)/cancel", "{}")
                                cancelledAfterPaying.withLock { $0[index] = cancel.status == 200 }
                            }
                        } else if index < 35 {
                            #expect(try await HTTP.command("http://\(via)/orders/w-\(index)/cancel", "{}").status == 200)
                        }
                        done.withLock { $0 += 1 }
                    }
                }
            }
            try await group.waitForAll()
        }
        let placed = try await HTTP.command("http://\(api)/orders", #"{"id":"w-none","customer":"c","lines":[{"sku":"\#(missing)","qty":1}]}"#)
        let noneTotal = try #require(placed.body["total_cents"] as? Int)
        #expect([200, 201].contains(try await HTTP.command("http://\(api)/orders/w-none/payments", #"{"id":"p","amount_cents":\#(noneTotal)}"#).status))
        let wms = try await restarted
        defer { wms.process.stop(signal: SIGKILL) }
        #expect(first.process.process.terminationReason == .uncaughtSignal, "the warehouse was killed mid-stream")

        // Every paid order that was not cancelled ships, as wms-<id>.
        var shippedCount = 0
        for index in 0..<orders {
            let cancelled = (30..<35).contains(index) || cancelledAfterPaying.value[index] == true
            let order = try await waitUntil("w-\(index) to settle", timeout: .seconds(30)) {
                let reply = try await HTTP.send(.GET, "http://\(api)/orders/w-\(index)").body
                let status = reply["status"] as? String
                return status == "paid" ? nil : reply  // paid: not shipped yet
            }
            if index < 30 && !cancelled {
                #expect(order["status"] as? String == "shipped", "w-\(index): \(order)")
                #expect(order["shipment_id"] as? String == "wms-w-\(index)")
                shippedCount += 1
            } else {
                #expect(order["status"] as? String != "shipped", "w-\(index) was cancelled or unpaid: \(order)")
            }
        }

        // Exactly once: one OrderShipped per order in the logs (copies of one
        // event count once), none for a cancelled order.
        try await cluster.waitForReplicasToCatchUp()
        let log = try cluster.log("api-1")
        for index in 0..<orders {
            let shipped = Set(try await log.events(orderID: "w-\(index)").filter { $0.type == "OrderShipped" }.map(\.eventID))
            #expect(shipped.count == (index < 30 && !((cancelledAfterPaying.value[index]) ?? false) ? 1 : 0), "w-\(index): \(shipped)")
        }

        // The warehouse took the stock once per shipment.
        let stock = try await waitUntil("stock to settle", timeout: .seconds(10)) {
            let body = try await HTTP.send(.GET, "http://\(wms.http)/wms/stock/\(sku)").body
            return body["on_hand"] as? Int == initialStock - 2 * shippedCount ? body : nil
        }
        #expect(stock["on_hand"] as? Int == initialStock - 2 * shippedCount)

        // Out of stock: backordered, explicitly, and the order stays paid.
        let backordered = try await waitUntil("w-none to be backordered", timeout: .seconds(10)) {
            let reply = try await HTTP.send(.GET, "http://\(wms.http)/wms/orders/w-none")
            return reply.body["state"] as? String == "backordered" ? reply.body : nil
        }
        #expect((backordered["detail"] as? String)?.contains("out of stock") == true)
        #expect(try await HTTP.send(.GET, "http://\(api)/orders/w-none").body["status"] as? String == "paid")
        let summary = try await HTTP.send(.GET, "http://\(wms.http)/wms/summary").body
        #expect((summary["orders"] as? [String: Int])?["shipped"] == shippedCount)
        #expect(try await HTTP.send(.GET, "http://\(wms.http)/wms/orders/bad%20id").status == 400)

        // Restocking: bad requests change nothing; goods received release the
        // backordered order, which then ships once.
        let restock = "http://\(wms.http)/admin/wms/stock/\(missing)"
        let token = ["Authorization": "Bearer \(TestCluster.adminToken)"]
        #expect(try await HTTP.send(.POST, restock, #"{"units":5}"#).status == 401, "no token")
        #expect(try await HTTP.send(.POST, restock, #"{"units":5}"#, headers: ["Authorization": "Bearer wrong"]).status == 401)
        for body in [#"{"units":0}"#, #"{"units":-3}"#, #"{"units":"5"}"#, #"{"units":1.5}"#, #"{"units":true}"#, #"{}"#, "[5]", "{", #"{"units":2000000}"#] {
            let reply = try await HTTP.send(.POST, restock, body, headers: token)
            #expect(reply.status == 400 && (reply.body["error"] as? [String: Any])?["code"] != nil, "\(body): \(reply.status) \(reply.body)")
        }
        #expect(try await HTTP.send(.POST, "http://\(wms.http)/admin/wms/stock/NO-SUCH-SKU", #"{"units":5}"#, headers: token).status == 404)
        #expect(try await HTTP.send(.GET, "http://\(wms.http)/wms/stock/\(missing)").body["on_hand"] as? Int == 0, "refusals changed nothing")
        let restocked = try await HTTP.send(.POST, restock, #"{"units":5}"#, headers: token)
        #expect(restocked.status == 200, "\(restocked.body)")
        #expect(restocked.body["on_hand"] as? Int == 5 && restocked.body["released_backorders"] as? Int == 1, "\(restocked.body)")
        let released = try await waitUntil("w-none to ship after the restock", timeout: .seconds(20)) {
            let reply = try await HTTP.send(.GET, "http://\(wms.http)/wms/orders/w-none")
            return reply.body["state"] as? String == "shipped" ? reply.body : nil
        }
        #expect(released["shipment_id"] as? String == "wms-w-none")
        #expect(try await HTTP.send(.GET, "http://\(api)/orders/w-none").body["status"] as? String == "shipped")
        #expect(try await HTTP.send(.GET, "http://\(wms.http)/wms/stock/\(missing)").body["on_hand"] as? Int == 4)
    }
}
