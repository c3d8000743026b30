import OrderDomain
import Testing

/// The byte decoder used by the stats rebuild must answer exactly as the
/// text decoder does, for canonical payloads (its fast path) and for every
/// other text (where it hands over).
@Suite struct EventBytesDecodingTests {
    static func bytesDecode(_ typeName: String, _ payload: String) -> Result<OrderEvent, EventDecodingError> {
        var type = typeName
        var text = payload
        return type.withUTF8 { typeBytes in
            text.withUTF8 { payloadBytes in
                Result { () throws(EventDecodingError) in
                    try OrderEvent.decode(typeName: UnsafeRawBufferPointer(typeBytes), payload: UnsafeRawBufferPointer(payloadBytes))
                }
            }
        }
    }

    static func textDecode(_ typeName: String, _ payload: String) -> Result<OrderEvent, EventDecodingError> {
        Result { () throws(EventDecodingError) in try OrderEvent.decode(typeName: typeName, payload: payload) }
    }

    @Test(arguments: everyEvent + [
        .conflictRecorded(code: "shipped_twice", detail: "a \"detail\""),
        .orderPlaced(customer: "c", lines: [], totalCents: 0),
        .paymentReceived(paymentID: ClientID("p")!, amountCents: -5, heldUntilMs: .min),
        .orderPaid(paidCents: .max),
    ])
    func everyEventDecodesFromItsBytes(event: OrderEvent) throws {
        #expect(try Self.bytesDecode(event.typeName, event.payloadJSON()).get() == event)
    }

    @Test func randomEventsDecodeAlike() throws {
        var random = SplitMix64(seed: 7)
        let skus = ["SKU-00001", "SKU-01200", "S", "x y"]
        for _ in 0..<2000 {
            let id = ClientID("p-\(random.next() % 1000)")!
            let amount = Int64(bitPattern: random.next()) >> Int64(random.next() % 64)
            let event: OrderEvent
            switch random.next() % 7 {
            case 0:
                let lines = (0..<Int(random.next() % 4)).map { _ in
                    OrderLine(sku: skus[Int(random.next() % 4)], qty: Int(random.next() % 100), unitPriceCents: amount)
                }
                event = .orderPlaced(customer: random.next() % 2 == 0 ? "c-1" : trickyText, lines: lines, totalCents: amount)
            case 1: event = .paymentReceived(paymentID: id, amountCents: amount, heldUntilMs: random.next() % 2 == 0 ? nil : amount)
            case 2: event = .paymentApplied(paymentID: id, amountCents: amount)
            case 3: event = .paymentRefunded(paymentID: id, amountCents: amount, reason: [.overpayment, .orderCancelled, .orderNeverArrived, .reconciled][Int(random.next() % 4)])
            case 4: event = .orderPaid(paidCents: amount)
            case 5: event = .orderCancelled(reason: random.next() % 2 == 0 ? nil : "why \(amount)")
            default: event = .orderShipped(shipmentID: id)
            }
            #expect(try Self.bytesDecode(event.typeName, event.payloadJSON()).get() == event)
        }
    }

    @Test func nonCanonicalAndBadPayloadsAnswerAsTheTextDecoder() {
        let cases: [(String, String)] = [
            ("PaymentReceived", #"{ "v":1,"payment_id":"p","amount_cents":5}"#),
            ("PaymentReceived", #"{"amount_cents":5,"payment_id":"p","v":1}"#),
            ("PaymentReceived", #"{"v":1,"payment_id":"p","amount_cents":5,"held_until_ms":null}"#),
            ("PaymentReceived", #"{"v":1,"payment_id":"p","amount_cents":5,"extra":true}"#),
            ("PaymentReceived", #"{"v":1,"payment_id":"p","amount_cents":05}"#),
            ("PaymentReceived", #"{"v":1,"payment_id":"p","amount_cents":-0}"#),
            ("PaymentReceived", #"{"v":1,"payment_id":"p","amount_cents":5.0}"#),
            ("PaymentReceived", #"{"v":1,"payment_id":"p","amount_cents":1e3}"#),
            ("PaymentReceived", #"{"v":1,"payment_id":"p","amount_cents":99999999999999999999}"#),
            ("PaymentReceived", #"{"v":1,"payment_id":"p","amount_cents":-9223372036854775808}"#),
            ("PaymentReceived", #"{"v":1,"payment_id":"p q","amount_cents":5}"#),
            ("PaymentReceived", #"{"v":1,"payment_id":"p\u0041","amount_cents":5}"#),
            ("PaymentReceived", #"{"v":2,"payment_id":"p","amount_cents":5}"#),
            ("PaymentReceived", #"{"v":1,"payment_id":"p","amount_cents":5}x"#),
            ("PaymentReceived", #"{"v":1,"payment_id":"p","amount_cents":5"#),
            ("PaymentReceived", #"{"v":1,"payment_id":"p","amount_cents":"5"}"#),
            ("PaymentReceived", ""),
            ("OrderPlaced", #"{"v":1,"customer":"é","lines":[],"total_cents":0}"#),
            ("OrderPlaced", #"{"v":1,"customer":"c","lines":[{"sku":"S","qty":1,"unit_price_cents":5},],"total_cents":5}"#),
            ("OrderPlaced", #"{"v":1,"customer":"c","lines":[{"qty":1,"sku":"S","unit_price_cents":5}],"total_cents":5}"#),
            ("OrderPlaced", #"{"v":1,"customer":"c","lines":[{"sku":"S","qty":99999999999,"unit_price_cents":5}],"total_cents":5}"#),
            ("OrderPlaced", #"{"v":1,"customer":"c","lines":{},"total_cents":5}"#),
            ("PaymentRefunded", #"{"v":1,"payment_id":"p","amount_cents":5,"reason":"because"}"#),
            ("OrderCancelled", #"{"v":1,"reason":"a\"b"}"#),
            ("OrderCancelled", #"{"v":1,"reason":"tab\there"}"#),
            ("OrderShipped", #"{"v":1,"shipment_id":""}"#),
            ("Unknown", #"{"v":1}"#),
            ("orderPaid", #"{"v":1,"paid_cents":5}"#),
        ]
        for (typeName, payload) in cases {
            let bytes = Self.bytesDecode(typeName, payload)
            let text = Self.textDecode(typeName, payload)
            switch (bytes, text) {
            case (.success(let a), .success(let b)): #expect(a == b, "\(typeName) \(payload)")
            case (.failure(let a), .failure(let b)): #expect(a == b, "\(typeName) \(payload)")
            default: Issue.record("\(typeName) \(payload): bytes \(bytes), text \(text)")
            }
        }
    }

    @Test func everyTruncationAndByteFlipAnswersAsTheTextDecoder() {
        var random = SplitMix64(seed: 11)
        for event in everyEvent {
            let payload = Array(event.payloadJSON().utf8)
            var variants: [[UInt8]] = (0..<payload.count).map { Array(payload[..<$0]) }
            for _ in 0..<200 {
                var flipped = payload
                flipped[Int(random.next() % UInt64(payload.count))] = UInt8(truncatingIfNeeded: random.next() % 128)
                variants.append(flipped)
            }
            for variant in variants {
                let text = String(decoding: variant, as: UTF8.self)
                let bytes = Self.bytesDecode(event.typeName, text)
                let expected = Self.textDecode(event.typeName, text)
                switch (bytes, expected) {
                case (.success(let a), .success(let b)): #expect(a == b, "\(text)")
                case (.failure(let a), .failure(let b)): #expect(a == b, "\(text)")
                default: Issue.record("\(text): bytes \(bytes), text \(expected)")
                }
            }
        }
    }
}
