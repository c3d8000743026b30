import EventLog
import Foundation
import HTTPAPI
import Hummingbird
import HummingbirdTesting
import Node
import OrderDomain
import LogStorage
import Logging
import Membership
import Metrics
import Prometheus
import TestSupport
import Testing
import Wire

/// swift-metrics takes one backend per process: this suite installs it once.
let sharedRegistry: PrometheusCollectorRegistry = {
    let registry = PrometheusCollectorRegistry()
    MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    return registry
}()

/// The api routes through Hummingbird's router test framework, on a real
/// SQLite log in a temp folder.
@Suite struct HTTPAPITests {
    let sku = Catalog.standard.page(after: nil, limit: 1).products[0].sku
    var price: Int64 { Catalog.standard.product(sku: sku)!.priceCents }

    func withAPI(_ body: @escaping @Sendable (any TestClientProtocol, OrderEngine) async throws -> Void) async throws {
        let folder = (NSTemporaryDirectory() as NSString).appendingPathComponent("orderly-http-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let log = try EventLog.open(data: folder, node: "api-1")
        let engine = OrderEngine(log: log, catalog: .standard, config: EngineConfig(nodeID: "api-1"), clock: SystemClock())
        let app = Application(router: APIServer.router(service: engine, registry: sharedRegistry))
        do {
            try await app.test(.router) { client in try await body(client, engine) }
        } catch {
            await engine.shutdown()
            throw error
        }
        await engine.shutdown()
    }

    func json(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    func object(_ buffer: ByteBuffer) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any])
    }

    func errorCode(_ response: TestResponse) throws -> String? {
        let error = try object(response.body)["error"] as? [String: Any]
        #expect(error?["message"] as? String != nil, "every error carries a message")
        return error?["code"] as? String
    }

    func place(_ client: some TestClientProtocol, id: String, qty: Int = 1) async throws -> TestResponse {
        try await client.execute(
            uri: "/orders", method: .post,
            body: json(#"{"id":"\#(id)","customer":"alice","lines":[{"sku":"\#(sku)","qty":\#(qty)}]}"#))
    }

    @Test func placeOrderThenRepeatThenConflict() async throws {
        try await withAPI { client, _ in
            let created = try await place(client, id: "o-1", qty: 2)
            #expect(created.status == .created)
            let body = try object(created.body)
            #expect(body["id"] as? String == "o-1")
            #expect(body["status"] as? String == "placed")
            #expect((body["total_cents"] as? NSNumber)?.int64Value == 2 * price)
            #expect((body["paid_cents"] as? NSNumber)?.int64Value == 0)
            #expect((body["version"] as? NSNumber)?.int64Value == 1)
            #expect((body["lines"] as? [Any])?.count == 1)

            let repeated = try await place(client, id: "o-1", qty: 2)
            #expect(repeated.status == .ok)
            let conflict = try await place(client, id: "o-1", qty: 3)
            #expect(conflict.status == .conflict)
            #expect(try errorCode(conflict) == "order_id_reused")

            let read = try await client.execute(uri: "/orders/o-1", method: .get)
            #expect(read.status == .ok)
            #expect(try object(read.body)["status"] as? String == "placed")
        }
    }

    @Test func paymentsApplyHoldRepeatAndPayTheOrder() async throws {
        try await withAPI { client, _ in
            let held = try await client.execute(uri: "/orders/o-2/payments", method: .post, body: json(#"{"id":"p-1","amount_cents":\#(price)}"#))
            #expect(held.status == .accepted)
            #expect((try object(held.body)["payment"] as? [String: Any])?["status"] as? String == "held")
            let missing = try await client.execute(uri: "/orders/o-2", method: .get)
            #expect(missing.status == .notFound)

            #expect(try await place(client, id: "o-2").status == .created)
            let paid = try await client.execute(uri: "/orders/o-2", method: .get)
            #expect(try object(paid.body)["status"] as? String == "paid")

            let over = try await client.execute(uri: "/orders/o-2/payments", method: .post, body: json(#"{"id":"p-2","amount_cents":100}"#))
            #expect(over.status == .created)
            #expect((try object(over.body)["payment"] as? [String: Any])?["status"] as? String == "refunded")
            let again = try await client.execute(uri: "/orders/o-2/payments", method: .post, body: json(#"{"id":"p-2","amount_cents":100}"#))
            #expect(again.status == .ok)
            let reused = try await client.execute(uri: "/orders/o-2/payments", method: .post, body: json(#"{"id":"p-2","amount_cents":101}"#))
            #expect(reused.status == .conflict)
            #expect(try errorCode(reused) == "payment_id_reused")
        }
    }

    @Test func shipAndCancelFollowTheStateMachine() async throws {
        try await withAPI { client, _ in
            #expect(try await place(client, id: "o-3").status == .created)
            let early = try await client.execute(uri: "/orders/o-3/shipments", method: .post, body: json(#"{"id":"s-1"}"#))
            #expect(early.status == .conflict)
            #expect(try errorCode(early) == "order_not_paid")
            _ = try await client.execute(uri: "/orders/o-3/payments", method: .post, body: json(#"{"id":"p-1","amount_cents":\#(price)}"#))
            let shipped = try await client.execute(uri: "/orders/o-3/shipments", method: .post, body: json(#"{"id":"s-1"}"#))
            #expect(shipped.status == .created)
            #expect(try object(shipped.body)["status"] as? String == "shipped")
            let shippedAgain = try await client.execute(uri: "/orders/o-3/shipments", method: .post, body: json(#"{"id":"s-1"}"#))
            #expect(shippedAgain.status == .ok)
            let cancel = try await client.execute(uri: "/orders/o-3/cancel", method: .post)
            #expect(cancel.status == .conflict)
            #expect(try errorCode(cancel) == "order_shipped")

            #expect(try await place(client, id: "o-4").status == .created)
            let cancelled = try await client.execute(uri: "/orders/o-4/cancel", method: .post, body: json(#"{"reason":"changed mind"}"#))
            #expect(cancelled.status == .ok)
            #expect(try object(cancelled.body)["status"] as? String == "cancelled")
            let unknown = try await client.execute(uri: "/orders/nope/cancel", method: .post)
            #expect(unknown.status == .notFound)
        }
    }

    /// Each bad request gets a 4xx with the error shape, and the log is untouched.
    @Test(arguments: [
        ("/orders", "{not json", 400, "malformed_json"),
        ("/orders", "[1,2]", 400, "malformed_json"),
        ("/orders", "", 400, "malformed_json"),
        ("/orders", #"{"id":"x","id":"y","customer":"a","lines":[{"sku":"SKU-00001","qty":1}]}"#, 400, "malformed_json"),
        ("/orders", #"{"id":"x","customer":"a","lines":[{"sku":"SKU-00001","qty":1}]} x"#, 400, "malformed_json"),
        ("/orders", #"{"customer":"a","lines":[{"sku":"SKU-00001","qty":1}]}"#, 400, "missing_field"),
        ("/orders", #"{"id":"x","lines":[{"sku":"SKU-00001","qty":1}]}"#, 400, "missing_field"),
        ("/orders", #"{"id":7,"customer":"a","lines":[]}"#, 400, "wrong_type"),
        ("/orders", #"{"id":"x","customer":"a","lines":"SKU-00001"}"#, 400, "wrong_type"),
        ("/orders", #"{"id":"x","customer":"a","lines":[{"sku":"SKU-00001","qty":"1"}]}"#, 400, "wrong_type"),
        ("/orders", #"{"id":"x","customer":"a","lines":[{"sku":"SKU-00001","qty":1.5}]}"#, 400, "wrong_type"),
        ("/orders", #"{"id":"x","customer":"a","lines":[{"sku":"SKU-00001","qty":true}]}"#, 400, "wrong_type"),
        ("/orders", #"{"id":"x","customer":"a","lines":[{"sku":"NOPE","qty":1}]}"#, 400, "unknown_sku"),
        ("/orders", #"{"id":"x","customer":"a","lines":[{"sku":"SKU-00001","qty":0}]}"#, 400, "invalid_qty"),
        ("/orders", #"{"id":"x","customer":"a","lines":[{"sku":"SKU-00001","qty":-3}]}"#, 400, "invalid_qty"),
        ("/orders", #"{"id":"x","customer":"a","lines":[]}"#, 400, "no_lines"),
        ("/orders", #"{"id":"has space","customer":"a","lines":[{"sku":"SKU-00001","qty":1}]}"#, 400, "invalid_id"),
        ("/orders", #"{"id":"\#(String(repeating: "a", count: 65))","customer":"a","lines":[{"sku":"SKU-00001","qty":1}]}"#, 400, "invalid_id"),
        ("/orders/o-9/payments", #"{"id":"p","amount_cents":0}"#, 400, "invalid_amount"),
        ("/orders/o-9/payments", #"{"id":"p","amount_cents":-5}"#, 400, "invalid_amount"),
        ("/orders/o-9/payments", #"{"id":"p","amount_cents":"5"}"#, 400, "wrong_type"),
        ("/orders/o-9/payments", #"{"id":"p/1","amount_cents":5}"#, 400, "invalid_id"),
        ("/orders/o-9/payments", #"{"amount_cents":5}"#, 400, "missing_field"),
        ("/orders/bad%20id/payments", #"{"id":"p","amount_cents":5}"#, 400, "invalid_id"),
        ("/orders/o-9/shipments", #"{"id":""}"#, 400, "invalid_id"),
        ("/orders/o-9/cancel", #"{"reason":5}"#, 400, "wrong_type"),
    ])
    func badInputIsRefusedAndChangesNothing(uri: String, body: String, status: Int, code: String) async throws {
        try await withAPI { client, engine in
            let response = try await client.execute(uri: uri, method: .post, body: json(body))
            #expect(response.status.code == status, "\(uri) \(body)")
            #expect(try errorCode(response) == code, "\(uri) \(body)")
            #expect(try await engine.log.scan(origin: nil, fromOffset: 1, limit: 1).count == 0, "nothing was written")
        }
    }

    @Test func aBodyThatIsNotUTF8IsRefusedAndChangesNothing() async throws {
        try await withAPI { client, engine in
            var body = ByteBuffer(string: #"{"id":"x","customer":""#)
            body.writeBytes([0xC3, 0x28])  // an invalid two-byte sequence
            body.writeString(#"","lines":[{"sku":"SKU-00001","qty":1}]}"#)
            let response = try await client.execute(uri: "/orders", method: .post, body: body)
            #expect(response.status == .badRequest)
            #expect(try errorCode(response) == "malformed_json")
            #expect(try await engine.log.scan(origin: nil, fromOffset: 1, limit: 1).count == 0, "nothing was written")
        }
    }

    @Test func aBodyOverTheLimitIsRefusedWith413() async throws {
        try await withAPI { client, engine in
            let padding = String(repeating: "x", count: 70 * 1024)
            let response = try await client.execute(
                uri: "/orders", method: .post,
                body: json(#"{"id":"big","customer":"\#(padding)","lines":[{"sku":"\#(sku)","qty":1}]}"#))
            #expect(response.status == .contentTooLarge)
            #expect(try errorCode(response) == "body_too_large")
            #expect(try await engine.log.scan(origin: nil, fromOffset: 1, limit: 1).count == 0)
        }
    }

    /// JSON has one number type: 2.0 is the integer 2 (as JSON Schema and
    /// the OpenAPI contract say); 1.5 stays refused (above).
    @Test func aWholeNumberWrittenWithAFractionIsAnInteger() async throws {
        try await withAPI { client, _ in
            let placed = try await client.execute(
                uri: "/orders", method: .post, body: json(#"{"id":"f-1","customer":"a","lines":[{"sku":"\#(sku)","qty":2.0}]}"#))
            #expect(placed.status == .created)
            #expect(try object(placed.body)["total_cents"] as? Int == Int(price) * 2)
        }
    }

    /// A path that is a route's, with another method, is a 405 with the
    /// methods it allows; a path of no route a 404; both in the error shape.
    @Test func aWrongMethodIs405WithAllowAndAnUnknownPathA404() async throws {
        try await withAPI { client, _ in
            let wrong = try await client.execute(uri: "/health/live", method: .delete)
            #expect(wrong.status == .methodNotAllowed)
            #expect(wrong.headers[.allow] == "GET")
            #expect(try errorCode(wrong) == "method_not_allowed")
            let orders = try await client.execute(uri: "/orders/o-1", method: .put)
            #expect(orders.status == .methodNotAllowed && orders.headers[.allow] == "GET", "\(orders.status) \(String(buffer: orders.body))")
            let metrics = try await client.execute(uri: "/metrics", method: .post)
            #expect(metrics.status == .methodNotAllowed && metrics.headers[.allow] == "GET")
            let unknown = try await client.execute(uri: "/nothing/here", method: .get)
            #expect(unknown.status == .notFound)
            #expect(try errorCode(unknown) == "not_found")
        }
    }

    /// The router held its not-found middleware and the middleware the
    /// router: every router ever built, its routes' engine and the engine's
    /// log (its SQLite files) stayed for as long as the process ran.
    @Test func aRouterNoLongerUsedLetsGoOfItsService() async throws {
        let folder = try TemporaryFolder()
        weak var released: OrderEngine?
        do {
            let log = try EventLog.open(data: folder.path, node: "api-1")
            let engine = OrderEngine(log: log, catalog: .standard, config: EngineConfig(nodeID: "api-1"), clock: SystemClock())
            released = engine
            let app = Application(router: APIServer.router(service: engine, registry: sharedRegistry))
            try await app.test(.router) { client in
                let status = try await client.execute(uri: "/orders/o-1", method: .put).status
                #expect(status == .methodNotAllowed)
            }
            await engine.shutdown()
        }
        try await waitFor("the engine to be released", timeout: .seconds(10)) { released == nil }
    }

    @Test func productsArePagedOverTheWholeCatalog() async throws {
        try await withAPI { client, _ in
            var seen: [String] = []
            var after: String?
            repeat {
                let query = after.map { "&after=\($0)" } ?? ""
                let response = try await client.execute(uri: "/products?limit=400\(query)", method: .get)
                #expect(response.status == .ok)
                let page = try object(response.body)
                let products = try #require(page["products"] as? [[String: Any]])
                seen += products.compactMap { $0["sku"] as? String }
                after = page["next"] as? String
            } while after != nil
            #expect(seen.count == Catalog.standard.count)
            #expect(seen.count >= 1000)
            #expect(Set(seen).count == seen.count)

            let one = try await client.execute(uri: "/products/\(sku)", method: .get)
            #expect(one.status == .ok)
            #expect((try object(one.body)["price_cents"] as? NSNumber)?.int64Value == price)
            #expect(try await client.execute(uri: "/products/NOPE", method: .get).status == .notFound)
            let badLimit = try await client.execute(uri: "/products?limit=0", method: .get)
            #expect(badLimit.status == .badRequest)
            #expect(try errorCode(badLimit) == "invalid_limit")
        }
    }

    /// A node whose log failed an fsync is out of service: it answers not
    /// ready with the reason (so a balancer sends it nothing), leads no
    /// order, and refuses commands. (Before, it answered ready and went on
    /// leading orders whose every write it refused.)
    @Test func aNodeWhoseFsyncFailedIsNotReadyAndLeadsNothing() async throws {
        let log = InMemoryLogStore(origin: "api-1", clock: { 1_700_000_000_000 })
        let node = try await OrderlyNode.assemble(
            config: NodeConfig(id: "api-1", clustered: true), log: log,
            network: PeerClients(security: HandshakeConfig(cluster: "t", nodeID: "api-1", secret: nil), logger: Logger(label: "t")),
            peerAddress: "127.0.0.1:7081", environment: .system(), logger: Logger(label: "t"))
        let app = Application(router: APIServer.router(service: node.dispatcher, membership: node.membership, registry: sharedRegistry))
        let loops = Task { await node.runLoops() }
        defer { loops.cancel() }
        try await app.test(.router) { client in
            // Alone in its ring, it leads every order once its log has
            // recovered (there is no peer to ask), and is ready from then on.
            try await waitFor("the node to be ready") { try await client.execute(uri: "/health/ready", method: .get).status == .ok }
            // A node leads nothing for a moment when its membership loop ran
            // late (it may have been frozen): a loaded CI once caught it so
            // between the two looks. Wait for it to lead, with a deadline.
            try await waitFor("the ready node to lead its orders") { node.membership.route(ClientID("o-1")!) == .local }
            log.failNextSync()
            // The next write to reach the log's fsync fails. Under a busy CI a
            // first write once failed before it got there (and the node, its
            // log intact, stayed ready): write until one reaches it. None may
            // be acknowledged.
            var attempt = 0
            try await waitFor("a write to meet the failing fsync and take the node out of service") {
                attempt += 1
                let order = #"{"id":"o-\#(attempt)","customer":"c","lines":[{"sku":"\#(sku)","qty":1}]}"#
                let failed = try await client.execute(uri: "/orders", method: .post, body: json(order))
                #expect(failed.status.code >= 500, "a write is not acknowledged once the log's fsync fails (attempt \(attempt))")
                return try await client.execute(uri: "/health/ready", method: .get).status == .serviceUnavailable
            }
            let ready = try await client.execute(uri: "/health/ready", method: .get)
            #expect(ready.status == .serviceUnavailable)
            let body = try object(ready.body)
            #expect(body["status"] as? String == "out_of_service")
            #expect((body["reason"] as? String)?.contains("fsync") == true)
            guard case .unavailable = node.membership.route(ClientID("o-1")!) else {
                Issue.record("a node out of service leads nothing")
                return
            }
            let refused = try await client.execute(uri: "/orders/o-1", method: .get)
            #expect(refused.status == .serviceUnavailable, "not even reads: they could see what never became durable")
        }
    }

    @Test func clusterShowsMembersRingAndAnOrdersPlacement() async throws {
        let folder = (NSTemporaryDirectory() as NSString).appendingPathComponent("orderly-http-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let engine = OrderEngine(log: try EventLog.open(data: folder, node: "api-1"), catalog: .standard, config: EngineConfig(nodeID: "api-1"), clock: SystemClock())
        let membership = ClusterMembership(
            self: Member(id: "api-1", http: "127.0.0.1:8081", peer: "127.0.0.1:7081", incarnation: 1),
            config: MembershipConfig(), replicationFactor: 3,
            network: PeerClients(security: HandshakeConfig(cluster: "t", nodeID: "api-1", secret: nil), logger: Logger(label: "t")),
            environment: .system(), logger: Logger(label: "t"))
        let app = Application(router: APIServer.router(service: engine, membership: membership, registry: sharedRegistry))
        try await app.test(.router) { client in
            let view = try object(try await client.execute(uri: "/cluster?order=o-1", method: .get).body)
            #expect(view["node"] as? String == "api-1")
            let members = try #require(view["members"] as? [[String: Any]])
            #expect(members.count == 1)
            #expect(members[0]["status"] as? String == "alive")
            #expect(members[0]["peer"] as? String == "127.0.0.1:7081")
            let share = try #require(((view["ring"] as? [String: Any])?["shares"] as? [String: Double])?["api-1"])
            #expect(abs(share - 1) < 1e-9, "a node alone owns the whole ring")
            let order = try #require(view["order"] as? [String: Any])
            #expect(order["preference_list"] as? [String] == ["api-1"])
            #expect(order["leader"] as? String == "api-1")
            #expect((view["replication"] as? [String: Any])?["factor"] as? Int == 3)
            let bad = try await client.execute(uri: "/cluster?order=bad%20id", method: .get)
            #expect(bad.status == .badRequest)
            #expect(try errorCode(bad) == "invalid_id")
        }
        await engine.shutdown()
    }

    @Test func healthAndMetricsAnswer() async throws {
        try await withAPI { client, _ in
            #expect(try await client.execute(uri: "/health/live", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/health/ready", method: .get).status == .ok)
            #expect(try await place(client, id: "m-1").status == .created)
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            #expect(metrics.status == .ok)
            let text = String(buffer: metrics.body)
            for name in [
                "orderly_events_appended_total", "orderly_append_batch_events", "orderly_active_transactors",
                "orderly_command_seconds", "hb_requests",
            ] {
                #expect(text.contains(name), "/metrics shows \(name)")
            }
        }
    }
}
