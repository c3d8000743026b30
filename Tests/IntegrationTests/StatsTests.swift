import EventLog
import Foundation
import Testing

/// The stats node against real API nodes: every event counts exactly once
/// across a SIGKILL of the stats process, the figures agree with the orders
/// as the API serves them, and the rebuild tool agrees with the live node.
@Suite(.serialized) struct StatsTests {
    static func startStats(_ cluster: TestCluster, run: Int) async throws -> (process: OrderlyProcess, http: String) {
        try await cluster.startRole(["stats", "--data", cluster.folder.path, "--http", "127.0.0.1:0"], log: "stats-\(run).log")
    }

    /// Waits until the stats node has read every log to its end.
    static func caughtUp(_ cluster: TestCluster, stats: String) async throws -> [String: Any] {
        var ends: [String: Int64] = [:]
        for id in cluster.ids { ends[id] = try await cluster.log(id).lastOffset() }
        return try await waitUntil("stats to reach every log's end", timeout: .seconds(30)) {
            let body = try await HTTP.send(.GET, "http://\(stats)/stats/summary").body
            let positions = (body["positions"] as? [String: Any] ?? [:]).mapValues { ($0 as? NSNumber)?.int64Value ?? 0 }
            return positions == ends ? body : nil
        }
    }

    /// The distinct events of the cluster's logs.
    static func distinctEvents(_ cluster: TestCluster) async throws -> Int {
        var distinct = Set<String>()
        for id in cluster.ids {
            let log = try cluster.log(id)
            for (origin, last) in try await log.origins() {
                var from: Int64 = 1
                while from <= last {
                    let batch = try await log.scan(origin: origin, fromOffset: from, limit: 5000)
                    guard let tail = batch.last else { break }
                    distinct.formUnion(batch.map(\.eventID))
                    from = tail.offset + 1
                }
            }
        }
        return distinct.count
    }

    /// Runs `orderly` to its end: exit status and stdout.
    static func runOrderly(_ arguments: [String], in cluster: TestCluster) async throws -> (status: Int32, output: String) {
        let process = try OrderlyProcess(arguments, stderrPath: cluster.folder.file("run-\(UUID().uuidString).log"))
        let status = try await waitUntil("orderly \(arguments.first ?? "") to finish", timeout: .seconds(180)) {
            process.process.isRunning ? nil : process.process.terminationStatus
        }
        // The pipe may still hold the last lines (every run prints some).
        let output = try? await waitUntil("stdout to drain", timeout: .seconds(5)) { process.stdout.isEmpty ? nil : process.stdout }
        return (status, (output ?? "") + "\n" + process.stderrTail())
    }

    /// One customer: sometimes pays before placing, retries a payment,
    /// cancels or ships.
    /// Returns whether its order was acknowledged (201).
    @discardableResult
    static func customer(_ index: Int, _ cluster: TestCluster) async throws -> Bool {
        let nodes = cluster.ids
        func via(_ step: Int) -> String { cluster.http(nodes[(index + step) % nodes.count]) }
        let order = "st-\(index)"
        let sku = "SKU-\(String(format: "%05d", 1 + index % 7))"
        let qty = 1 + index % 3
        if index % 4 == 0 {
            _ = try await HTTP.send(.POST, "http://\(via(0))/orders/\(order)/payments", #"{"id":"early-\#(index)","amount_cents":100}"#)
        }
        let placed = try await HTTP.command("http://\(via(1))/orders", #"{"id":"\#(order)","customer":"c\#(index)","lines":[{"sku":"\#(sku)","qty":\#(qty)}]}"#)
        guard [200, 201].contains(placed.status), let total = placed.body["total_cents"] as? Int, let paid = placed.body["paid_cents"] as? Int else { return false }
        if index % 6 == 5 {
            _ = try await HTTP.send(.POST, "http://\(via(2))/orders/\(order)/cancel", #"{"reason":"changed mind"}"#)
            return true
        }
        if total > paid {
            let body = #"{"id":"pay-\#(index)","amount_cents":\#(total - paid)}"#
            _ = try await HTTP.send(.POST, "http://\(via(2))/orders/\(order)/payments", body)
            _ = try await HTTP.send(.POST, "http://\(via(0))/orders/\(order)/payments", body)  // a retry
        }
        if index % 3 == 0 {
            _ = try await HTTP.send(.POST, "http://\(via(1))/orders/\(order)/shipments", #"{"id":"ship-\#(index)"}"#)
        }
        return true
    }

    @Test func statsCountEveryEventOnceAcrossAKillAndTheRebuildAgrees() async throws {
        let cluster = try TestCluster()
        defer { cluster.stopAll(signal: SIGKILL) }
        for id in ["api-1", "api-2", "api-3"] { try await cluster.start(id) }
        try await cluster.waitForView(["api-1": "alive", "api-2": "alive", "api-3": "alive"], on: cluster.ids)
        let first = try await Self.startStats(cluster, run: 1)
        defer { first.process.stop(signal: SIGKILL) }

        // Customers run on four workers; the stats node is SIGKILLed while
        // they do, and restarted on the same folder while they go on.
        let customers = 80
        let done = Locked(0)
        let acknowledged = Locked<Set<Int>>([])
        async let restarted: (process: OrderlyProcess, http: String) = {
            try await waitFor("a third of the customers", timeout: .seconds(180)) { done.value >= customers / 3 }
            first.process.stop(signal: SIGKILL)
            return try await Self.startStats(cluster, run: 2)
        }()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    for index in stride(from: worker, to: customers, by: 4) {
                        if try await Self.customer(index, cluster) { acknowledged.withLock { _ = $0.insert(index) } }
                        done.withLock { $0 += 1 }
                    }
                }
            }
            try await group.waitForAll()
        }
        let stats = try await restarted
        defer { stats.process.stop(signal: SIGKILL) }
        #expect(first.process.process.terminationReason == .uncaughtSignal)

        // Caught up: every origin's position at the end of its log, and
        // exactly once: the events counted are the distinct events of the logs.
        let summary = try await Self.caughtUp(cluster, stats: stats.http)
        #expect(summary["lag_events"] as? Int == 0)
        let distinctBefore = try await Self.distinctEvents(cluster)
        #expect(summary["events_counted"] as? Int == distinctBefore)

        // The figures are those of the orders as the API serves them.
        var expectedStatuses: [String: Int] = [:]
        var expectedProducts: [String: [String: Int]] = [:]
        for index in 0..<customers {
            // A 503 says retry (under the whole suite's load CI once got one
            // here, and the reference missed an order the stats had right).
            let order = try await waitUntil("st-\(index) to be read", timeout: .seconds(30)) {
                let reply = try await HTTP.send(.GET, "http://\(cluster.http("api-1"))/orders/st-\(index)")
                return reply.status >= 500 ? nil : reply
            }
            if acknowledged.value.contains(index) {
                #expect(order.status == 200, "st-\(index) was acknowledged: \(order.status) \(order.body)")
            }
            guard order.status == 200, let status = order.body["status"] as? String else { continue }
            expectedStatuses[status, default: 0] += 1
            let refunded = order.body["refunded_cents"] as? Int ?? 0
            for line in order.body["lines"] as? [[String: Any]] ?? [] {
                let sku = line["sku"] as! String
                let qty = line["qty"] as! Int
                var figures = expectedProducts[sku, default: [:]]
                figures["units_ordered", default: 0] += qty
                if status == "paid" || status == "shipped" {
                    figures["units_paid", default: 0] += qty
                    figures["revenue_cents", default: 0] += line["line_total_cents"] as! Int
                }
                if status == "shipped" { figures["units_shipped", default: 0] += qty }
                if status == "cancelled" && refunded > 0 { figures["units_refunded", default: 0] += qty }
                expectedProducts[sku] = figures
            }
        }
        let orders = (summary["orders"] as? [String: Int] ?? [:]).filter { $0.value != 0 }
        #expect(orders == expectedStatuses)
        let products = try await HTTP.send(.GET, "http://\(stats.http)/stats/products?sort=sku&limit=100").body["products"] as? [[String: Any]] ?? []
        #expect(products.count == expectedProducts.count)
        for product in products {
            let sku = product["sku"] as? String ?? "?"
            for key in ["units_ordered", "units_paid", "units_shipped", "units_refunded", "revenue_cents"] {
                #expect(product[key] as? Int == expectedProducts[sku]?[key] ?? 0, "\(sku) \(key)")
            }
        }
        let one = try await HTTP.send(.GET, "http://\(stats.http)/stats/products/SKU-00002")
        #expect(one.status == 200 && one.body["positions"] != nil)
        #expect(try await HTTP.send(.GET, "http://\(stats.http)/stats/products/NOPE").status == 404)
        #expect(try await HTTP.send(.GET, "http://\(stats.http)/stats/products?sort=bogus").status == 400)
        #expect(try await HTTP.send(.GET, "http://\(stats.http)/stats/products?limit=0").status == 400)

        // The rebuild from the log files equals the live projection, compared
        // through its URL and through its file.
        let live = try await Self.runOrderly(["stats", "rebuild", "--logs", cluster.folder.path, "--compare", "http://\(stats.http)"], in: cluster)
        #expect(live.status == 0, "\(live.output)")
        #expect(live.output.contains("equal to"), "\(live.output)")
        let out = cluster.folder.file("rebuilt.sqlite")
        let file = try await Self.runOrderly(
            ["stats", "rebuild", "--logs", cluster.folder.path, "--out", out, "--compare", cluster.folder.path + "/stats/stats.sqlite"], in: cluster)
        #expect(file.status == 0, "\(file.output)")

        // A projection that differs is reported, with a non-zero exit: one
        // built from another log, holding one order the cluster never saw.
        let otherData = cluster.folder.file("other")
        let other = try EventLog.open(data: otherData, node: "other")
        _ = try await other.append(AppendRequest(events: [NewEvent(
            orderID: "x-1", version: 1, type: "OrderPlaced",
            payload: #"{"v":1,"customer":"c","lines":[{"sku":"SKU-00001","qty":1,"unit_price_cents":100}],"total_cents":100}"#)]))
        other.close()
        let otherOut = cluster.folder.file("other.sqlite")
        #expect(try await Self.runOrderly(["stats", "rebuild", "--logs", otherData, "--out", otherOut], in: cluster).status == 0)
        let partial = try await Self.runOrderly(["stats", "rebuild", "--logs", cluster.folder.path, "--compare", otherOut], in: cluster)
        #expect(partial.status == 1, "\(partial.output)")
        #expect(partial.output.contains("difference"), "\(partial.output)")

        // Online rebuild into a shadow while customers keep coming; it swaps
        // in once caught up, and the projection still counts each event once.
        let rebuildURL = "http://\(stats.http)/admin/stats/rebuild"
        #expect(try await HTTP.send(.POST, rebuildURL, "{}").status == 401)
        let started = try await HTTP.send(.POST, rebuildURL, "{}", headers: ["Authorization": "Bearer \(TestCluster.adminToken)"])
        #expect(started.status == 202, "\(started.body)")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<2 {
                group.addTask {
                    for index in stride(from: customers + worker, to: customers + 20, by: 2) { try await Self.customer(index, cluster) }
                }
            }
            try await group.waitForAll()
        }
        let finished = try await waitUntil("the online rebuild to swap in", timeout: .seconds(30)) {
            let body = try await HTTP.send(.GET, rebuildURL).body
            return body["phase"] as? String == "running" ? nil : body
        }
        #expect(finished["phase"] as? String == "swapped", "\(finished)")
        let after = try await Self.caughtUp(cluster, stats: stats.http)
        let distinctAfter = try await Self.distinctEvents(cluster)
        #expect(after["events_counted"] as? Int == distinctAfter)
        let again = try await Self.runOrderly(["stats", "rebuild", "--logs", cluster.folder.path, "--compare", "http://\(stats.http)"], in: cluster)
        #expect(again.status == 0, "\(again.output)")
        #expect(!FileManager.default.fileExists(atPath: cluster.folder.path + "/stats/stats.sqlite.rebuild"), "the shadow is removed")
    }
}
