import OrderDomain
import Testing

@Suite struct Encoding {
    static let tricky = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} é 😀 \u{2028}"

    static let everyEvent: [OrderEvent] = [
        .orderPlaced(customer: tricky, lines: [OrderLine(sku: "SKU-00001", qty: 2, unitPriceCents: 1999)], totalCents: 3998),
        .paymentReceived(paymentID: ClientID("p-1")!, amountCents: 500, heldUntilMs: 1_700_000_000_000),
        .paymentReceived(paymentID: ClientID("p-2")!, amountCents: 7, heldUntilMs: nil),
        .paymentApplied(paymentID: ClientID("p-1")!, amountCents: 400),
        .paymentRefunded(paymentID: ClientID("p-1")!, amountCents: 100, reason: .overpayment),
        .paymentRefunded(paymentID: ClientID("p-2")!, amountCents: 7, reason: .orderNeverArrived),
        .orderPaid(paidCents: 3998),
        .orderCancelled(reason: tricky),
        .orderCancelled(reason: nil),
        .orderShipped(shipmentID: ClientID("s.1_x")!),
    ]

    @Test(arguments: everyEvent)
    func everyEventRoundTripsThroughItsJSONPayload(event: OrderEvent) throws {
        let payload = event.payloadJSON()
        #expect(try OrderEvent.decode(typeName: event.typeName, payload: payload) == event)
        #expect(payload.hasPrefix(#"{"v":1"#))
    }

    @Test func payloadsUseSnakeCaseKeys() {
        let payload = OrderEvent.paymentReceived(paymentID: ClientID("p-1")!, amountCents: 5, heldUntilMs: 9).payloadJSON()
        #expect(payload == #"{"v":1,"payment_id":"p-1","amount_cents":5,"held_until_ms":9}"#)
    }

    @Test(arguments: [
        ("OrderPlaced", #"{"v":1}"#),
        ("PaymentReceived", #"{"v":1,"payment_id":"bad id","amount_cents":5}"#),
        ("PaymentReceived", #"{"v":1,"payment_id":"p","amount_cents":"5"}"#),
        ("PaymentRefunded", #"{"v":1,"payment_id":"p","amount_cents":5,"reason":"whim"}"#),
        ("Unknown", #"{"v":1}"#),
        ("OrderPaid", #"{"v":1,"paid_cents":5"#),
        ("OrderPaid", #"{"v":1,"paid_cents":5} x"#),
        ("OrderPaid", ""),
    ])
    func badPayloadsThrowAClearError(type: String, payload: String) {
        #expect(throws: EventDecodingError.self) { try OrderEvent.decode(typeName: type, payload: payload) }
    }

    @Test func theParserRefusesHostileInputWithoutCrashing() throws {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        for text in [deep, "\"unterminated", "{\"a\":}", "[1,]", "\"\\uZZZZ\"", "\"\\ud800x\"", "99999999999999999999", "\"a\u{1}\"", "{1:2}"] {
            #expect(throws: EventDecodingError.self, "\(text.prefix(20))") { try JSONValue.parse(text) }
        }
        let parsed = try JSONValue.parse(#" {"a" : [1, -2, true, null, "\u00e9\ud83d\ude00"]} "#)
        #expect(parsed == .object([("a", .array([.integer(1), .integer(-2), .bool(true), .null, .string("é😀")]))]))
    }

    @Test func snapshotsRoundTripExactly() throws {
        var order = Order()
        _ = order.pay("early", 3)
        _ = order.place([(sku1, 2), (sku2, 1)], customer: Self.tricky)
        _ = order.pay("p-1", price1)
        _ = order.accept(.cancel(reason: "why \"not\""))
        let restored = try OrderState.fromSnapshot(order.state.snapshotJSON())
        #expect(restored == order.state)
        let empty = OrderState(orderID: id("e"))
        #expect(try OrderState.fromSnapshot(empty.snapshotJSON()) == empty)
        #expect(throws: EventDecodingError.self) { try OrderState.fromSnapshot(#"{"snapshot_v":99}"#) }
    }
}

@Suite struct Identifiers {
    @Test func clientIDsFollowThePattern() {
        for good in ["a", "A-z_0.9", String(repeating: "x", count: 64)] { #expect(ClientID(good) != nil, "\(good)") }
        for bad in ["", " ", "a b", "a/b", "é", String(repeating: "x", count: 65), "a\n"] { #expect(ClientID(bad) == nil, "\(bad)") }
    }
}

@Suite struct CatalogTests {
    @Test func theStandardCatalogHasOverAThousandUniqueSortedProducts() {
        let all = Catalog.standard.all
        #expect(all.count >= 1000)
        #expect(Set(all.map(\.sku)).count == all.count)
        #expect(all.map(\.sku) == all.map(\.sku).sorted())
        #expect(all.allSatisfy { $0.priceCents >= 99 && $0.priceCents < 50_000 && $0.stock >= 0 && !$0.name.isEmpty })
        #expect(all.contains { $0.stock == 0 }, "some products are out of stock")
    }

    /// Pinned: the catalog is reference data, the same in every release.
    @Test func theStandardCatalogIsStable() {
        let first = Catalog.standard.all[0]
        #expect(first.sku == "SKU-00001")
        #expect(first == Catalog.standard.product(sku: "SKU-00001"))
        #expect(Catalog.standard.all.last?.sku == "SKU-01200")
        #expect(pinnedFirst == "\(first.name)|\(first.priceCents)|\(first.stock)")
    }

    @Test func pagingVisitsEveryProductOnce() {
        var seen: [String] = []
        var after: String?
        repeat {
            let page = Catalog.standard.page(after: after, limit: 77)
            seen += page.products.map(\.sku)
            after = page.next
        } while after != nil
        #expect(seen == Catalog.standard.all.map(\.sku))
        #expect(Catalog.standard.page(after: "SKU-01200", limit: 10).products.isEmpty)
        #expect(Catalog.standard.page(after: "A", limit: 1).products.first?.sku == "SKU-00001")
    }
}

let pinnedFirst = "Green Ceramic Lamp|8673|187"
