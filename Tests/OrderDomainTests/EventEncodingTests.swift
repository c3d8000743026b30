import OrderDomain
import Testing

/// Strings that a hand-written JSON writer gets wrong first.
let trickyText = "quote \" backslash \\ slash / newline \n tab \t cr \r nul \u{0} bell \u{7} del \u{7F} é 😀 \u{2028} 中文"

let everyEvent: [OrderEvent] = [
    .orderPlaced(
        customer: trickyText,
        lines: [OrderLine(sku: "SKU-00001", qty: 2, unitPriceCents: 1999), OrderLine(sku: "SKU-01200", qty: 10_000, unitPriceCents: 99)],
        totalCents: 993_998),
    .paymentReceived(paymentID: ClientID("p-1")!, amountCents: 500, heldUntilMs: 1_700_000_000_000),
    .paymentReceived(paymentID: ClientID("p-2")!, amountCents: 7, heldUntilMs: nil),
    .paymentApplied(paymentID: ClientID("p-1")!, amountCents: 400),
    .paymentRefunded(paymentID: ClientID("p-1")!, amountCents: 100, reason: .overpayment),
    .paymentRefunded(paymentID: ClientID("p-2")!, amountCents: 7, reason: .orderNeverArrived),
    .paymentRefunded(paymentID: ClientID("p-3")!, amountCents: Limits.amountCentsMax, reason: .orderCancelled),
    .orderPaid(paidCents: 3998),
    .orderCancelled(reason: trickyText),
    .orderCancelled(reason: nil),
    .orderCancelled(reason: ""),
    .orderShipped(shipmentID: ClientID("s.1_x-Z")!),
]

@Suite struct EventEncodingTests {
    @Test(arguments: everyEvent)
    func everyEventRoundTripsThroughItsJSONPayload(event: OrderEvent) throws {
        let payload = event.payloadJSON()
        #expect(try OrderEvent.decode(typeName: event.typeName, payload: payload) == event)
        #expect(payload.hasPrefix(#"{"v":1"#))
        #expect(!payload.contains("\n"), "compact, one line")
        #expect(try JSONValue.parse(payload).serialized() == payload, "the writer's output is canonical")
    }

    @Test func payloadsArePinned() {
        // Stored in the log: this text is a contract with every older node.
        let p1 = ClientID("p-1")!
        let pinned: [(OrderEvent, String, String)] = [
            (.orderPlaced(customer: "a\"b", lines: [OrderLine(sku: "S", qty: 2, unitPriceCents: 5)], totalCents: 10), "OrderPlaced",
             #"{"v":1,"customer":"a\"b","lines":[{"sku":"S","qty":2,"unit_price_cents":5}],"total_cents":10}"#),
            (.paymentReceived(paymentID: p1, amountCents: 5, heldUntilMs: 9), "PaymentReceived",
             #"{"v":1,"payment_id":"p-1","amount_cents":5,"held_until_ms":9}"#),
            (.paymentReceived(paymentID: p1, amountCents: 5, heldUntilMs: nil), "PaymentReceived", #"{"v":1,"payment_id":"p-1","amount_cents":5}"#),
            (.paymentApplied(paymentID: p1, amountCents: 5), "PaymentApplied", #"{"v":1,"payment_id":"p-1","amount_cents":5}"#),
            (.paymentRefunded(paymentID: p1, amountCents: 5, reason: .orderNeverArrived), "PaymentRefunded",
             #"{"v":1,"payment_id":"p-1","amount_cents":5,"reason":"order_never_arrived"}"#),
            (.orderPaid(paidCents: 10), "OrderPaid", #"{"v":1,"paid_cents":10}"#),
            (.orderCancelled(reason: "tab\there"), "OrderCancelled", #"{"v":1,"reason":"tab\there"}"#),
            (.orderCancelled(reason: nil), "OrderCancelled", #"{"v":1}"#),
            (.orderShipped(shipmentID: ClientID("s-1")!), "OrderShipped", #"{"v":1,"shipment_id":"s-1"}"#),
        ]
        for (event, typeName, payload) in pinned {
            #expect(event.typeName == typeName)
            #expect(event.payloadJSON() == payload)
        }
        // Every type is at schema version 1 (raising one is a deliberate
        // change: an upcaster, a fixture and docs/events.md go with it).
        #expect(OrderEvent.typeNames.allSatisfy { EventSchemas.orderly.current(of: $0) == 1 })
    }

    @Test func controlCharactersAreEscaped() {
        let payload = OrderEvent.orderCancelled(reason: "\u{0}\u{1F}\u{8}\u{C}\n\r\t").payloadJSON()
        #expect(payload == #"{"v":1,"reason":"\u0000\u001f\u0008\u000c\n\r\t"}"#)
        #expect(payload.unicodeScalars.allSatisfy { $0.value >= 0x20 })
    }

    @Test func payloadsWrittenByOthersAreRead() throws {
        // Whitespace, key order and escapes another writer may choose.
        let payload = #" { "reason" : "\u00e9\ud83d\ude00\/" , "v" : 1 } "#
        #expect(try OrderEvent.decode(typeName: "OrderCancelled", payload: payload) == .orderCancelled(reason: "é😀/"))
        #expect(try OrderEvent.decode(typeName: "OrderCancelled", payload: #"{"v":1,"reason":null}"#) == .orderCancelled(reason: nil))
    }

    @Test(arguments: [
        ("OrderPlaced", #"{"v":1}"#),
        ("OrderPlaced", #"{"v":1,"customer":"c","lines":[{"sku":"S","qty":1.5,"unit_price_cents":5}],"total_cents":5}"#),
        ("OrderPlaced", #"{"v":1,"customer":"c","lines":[7],"total_cents":5}"#),
        ("PaymentReceived", #"{"v":1,"payment_id":"bad id","amount_cents":5}"#),
        ("PaymentReceived", #"{"v":1,"payment_id":"p","amount_cents":"5"}"#),
        ("PaymentReceived", #"{"v":1,"payment_id":"p","amount_cents":5,"held_until_ms":"soon"}"#),
        ("PaymentRefunded", #"{"v":1,"payment_id":"p","amount_cents":5,"reason":"whim"}"#),
        ("OrderPaid", #"{"v":2,"paid_cents":5}"#),
        ("OrderPaid", #"{"paid_cents":5}"#),
        ("OrderPaid", #"{"v":1,"paid_cents":5"#),
        ("OrderPaid", #"{"v":1,"paid_cents":5} x"#),
        ("OrderPaid", #"[1]"#),
        ("OrderPaid", ""),
        ("OrderShipped", #"{"v":1,"shipment_id":""}"#),
        ("Unknown", #"{"v":1}"#),
    ])
    func badPayloadsThrowAClearError(typeName: String, payload: String) {
        #expect(throws: EventDecodingError.self) { try OrderEvent.decode(typeName: typeName, payload: payload) }
    }

    @Test func decodingErrorsSayWhatIsWrong() {
        #expect(throws: EventDecodingError("unknown event type Nope")) { try OrderEvent.decode(typeName: "Nope", payload: #"{"v":1}"#) }
        do {
            _ = try OrderEvent.decode(typeName: "OrderPaid", payload: #"{"v":1}"#)
            Issue.record("expected an error")
        } catch {
            #expect(error.message.contains("paid_cents"))
            #expect(error.description == error.message)
        }
    }
}
