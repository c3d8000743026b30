import EventLog
import Logging
import NIOCore
import OrderDomain
import Testing
import Wire

@testable import Node

/// Two nodes in one process, each with its own log and peer listener; a
/// fixed routing rule stands in for the ring.
@Suite struct DispatcherTests {
    static func security(_ node: String) -> HandshakeConfig {
        HandshakeConfig(cluster: "t", nodeID: node, secret: Array("a-secret-of-enough-length".utf8))
    }

    struct TestNode {
        let engine: OrderEngine
        let listener: any Channel
        var peer: String { "127.0.0.1:\(listener.localAddress!.port!)" }
    }

    func startNode(_ id: String, in folder: borrowing TemporaryFolder) async throws -> TestNode {
        let log = try EventLog.open(data: folder.path, node: id)
        let engine = OrderEngine(log: log, catalog: .standard, config: EngineConfig(nodeID: id), clock: SystemClock())
        let logger = Logger(label: "test")
        let inbox = NodeInbox(engine: engine, logger: logger)
        let listener = try await PeerTransport.listen(host: "127.0.0.1", port: 0, security: Self.security(id), logger: logger) {
            Dispatcher.serverHandler(inbox, logger: logger)
        }
        return TestNode(engine: engine, listener: listener)
    }

    @Test func aCommandSentToANonLeaderIsWrittenToTheLeadersLog() async throws {
        let folder = try TemporaryFolder()
        let a = try await startNode("api-a", in: folder)
        let b = try await startNode("api-b", in: folder)
        let bPeer = b.peer
        // A generous deadline: this test is about where commands go, and the
        // whole suite shares two cores with real processes.
        let dispatcher = Dispatcher(engine: a.engine, security: Self.security("api-a"), forwardTimeout: .seconds(20), logger: Logger(label: "test")) { order in
            order.rawValue.hasPrefix("b-") ? .remote(nodeID: "api-b", peer: bPeer) : .local
        }
        let placed = try await dispatcher.execute(id("b-1"), .place(customer: "c", lines: [OrderLineRequest(sku: someSKU, qty: 1)]))
        #expect(placed.value?.outcome == .created)
        let paid = try await dispatcher.execute(id("b-1"), .pay(paymentID: id("p-1"), amountCents: someSKUPrice))
        #expect(paid.value?.state.status == .paid)
        let refused = try await dispatcher.execute(id("b-1"), .pay(paymentID: id("p-1"), amountCents: 1))
        guard case .failure(.conflict(let code, _)) = refused else {
            Issue.record("the leader's refusal comes back as a refusal: \(refused)")
            return
        }
        #expect(code == "payment_id_reused")
        _ = try await dispatcher.execute(id("a-1"), .place(customer: "c", lines: [OrderLineRequest(sku: someSKU, qty: 1)]))

        #expect(try await b.engine.log.events(orderID: "b-1", afterVersion: 0).map(\.type) == ["OrderPlaced", "PaymentReceived", "OrderPaid"])
        #expect(try await a.engine.log.events(orderID: "b-1", afterVersion: 0).isEmpty, "nothing of b-1 on the non-leader")
        #expect(try await a.engine.log.events(orderID: "a-1", afterVersion: 0).count == 1, "local orders stay local")
        #expect(try await dispatcher.state(of: id("b-1")).version == 3)

        await dispatcher.shutdown()
        try await a.listener.close()
        try await b.listener.close()
        await a.engine.shutdown()
        await b.engine.shutdown()
    }

    @Test func anUnreachableLeaderGivesUnavailableWithinTheDeadline() async throws {
        let folder = try TemporaryFolder()
        let a = try await startNode("api-a", in: folder)
        // A port that was just free: nothing listens there.
        let gone = try await startNode("api-gone", in: folder)
        let gonePeer = gone.peer
        try await gone.listener.close()
        let dispatcher = Dispatcher(engine: a.engine, security: Self.security("api-a"), forwardTimeout: .milliseconds(500), logger: Logger(label: "test")) { _ in
            .remote(nodeID: "api-gone", peer: gonePeer)
        }
        let start = ContinuousClock.now
        await #expect(throws: EngineError.self) {
            _ = try await dispatcher.execute(id("x-1"), .place(customer: "c", lines: [OrderLineRequest(sku: someSKU, qty: 1)]))
        }
        // A coarse bound, not a timing: the 500 ms deadline frees the caller
        // rather than whatever the connection would wait for. A busy machine
        // once took 7 s to get there, so 30 s.
        #expect(ContinuousClock.now - start < .seconds(30), "the caller is freed by the deadline")
        await dispatcher.shutdown()
        try await a.listener.close()
        await a.engine.shutdown()
        await gone.engine.shutdown()
    }

    @Test(arguments: [
        ForwardedCall.read,
        .command(.place(customer: "é \"q\"", lines: [OrderLineRequest(sku: "SKU-00001", qty: 2), OrderLineRequest(sku: "SKU-00002", qty: 1)])),
        .command(.pay(paymentID: ClientID("p-1")!, amountCents: 1234)),
        .command(.cancel(reason: nil)),
        .command(.cancel(reason: "why")),
        .command(.ship(shipmentID: ClientID("s-1")!)),
        .command(.expireHeldPayments),
    ])
    func forwardRequestsRoundTrip(call: ForwardedCall) throws {
        let request = ForwardRequest(correlationID: 42, timeoutMs: 900, orderID: id("o-1"), call: call)
        #expect(try ForwardCodec.decodeRequest(ForwardCodec.encode(request)) == request)
    }

    @Test func forwardRepliesRoundTripAndGarbageIsRefused() throws {
        var state = OrderState(orderID: id("o-1"))
        state = OrderDecider.evolve(state, .paymentReceived(paymentID: id("p"), amountCents: 5, heldUntilMs: 10))
        for reply in [
            ForwardReply.done(outcome: .held, state: state), .done(outcome: nil, state: state),
            .refused(.conflict(code: "order_shipped", message: "m")), .refused(.notFound(message: "n")),
            .refused(.invalid(code: "invalid_qty", message: "q")), .unavailable("disk full"),
        ] {
            let decoded = try ForwardCodec.decodeReply(ForwardCodec.encode(reply, correlationID: 7))
            #expect(decoded.correlationID == 7)
            #expect(decoded.reply == reply)
        }
        for bytes in [[], [0, 0, 0, 0, 0, 0, 0, 1, 9], [0, 0, 0, 0, 0, 0, 0, 1, 0, 3, 0xFF, 0xFF, 0xFF, 0xFF]] as [[UInt8]] {
            #expect(throws: WireError.self) { try ForwardCodec.decodeReply(Frame(type: 17, payload: ByteBuffer(bytes: bytes))) }
            #expect(throws: WireError.self) { try ForwardCodec.decodeRequest(Frame(type: 16, payload: ByteBuffer(bytes: bytes))) }
        }
    }

    /// A client's text crosses to the leader whole, however long the body
    /// let it be (the leader's rules answer it), and an error message that
    /// quotes it comes back cut to what the entry node reads, on a scalar
    /// boundary.
    @Test func longClientTextCrossesAndLongMessagesComeBackCut() throws {
        let sku = String(repeating: "中", count: 3000)
        let customer = String(repeating: "é", count: 2000)
        let request = ForwardRequest(
            correlationID: 1, timeoutMs: 900, orderID: id("o-1"),
            call: .command(.place(customer: customer, lines: [OrderLineRequest(sku: sku, qty: 1)])))
        #expect(try ForwardCodec.decodeRequest(ForwardCodec.encode(request)) == request)
        let cancel = ForwardRequest(correlationID: 2, timeoutMs: 900, orderID: id("o-1"), call: .command(.cancel(reason: String(repeating: "r", count: 5000))))
        #expect(try ForwardCodec.decodeRequest(ForwardCodec.encode(cancel)) == cancel)

        let message = "no product with sku '\(sku)'"
        for reply in [ForwardReply.refused(.invalid(code: "unknown_sku", message: message)), .unavailable(message)] {
            let decoded = try ForwardCodec.decodeReply(ForwardCodec.encode(reply, correlationID: 3)).reply
            let text: String
            switch decoded {
            case .refused(.invalid(let code, let cut)): #expect(code == "unknown_sku"); text = cut
            case .unavailable(let cut): text = cut
            default: Issue.record("\(decoded)"); continue
            }
            #expect(text.utf8.count <= WireLimits.messageBytesMax && text.utf8.count > WireLimits.messageBytesMax - 3)
            #expect(message.hasPrefix(text))
        }
        #expect("é中😀".prefix(utf8Bytes: 6) == "é中")
        #expect("é中😀".prefix(utf8Bytes: 4) == "é")
        #expect("abc".prefix(utf8Bytes: 3) == "abc")
        #expect("abc".prefix(utf8Bytes: 0) == "")
    }
}
