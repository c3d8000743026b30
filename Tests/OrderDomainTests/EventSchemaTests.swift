import OrderDomain
import Testing

/// Schema evolution: payloads of older versions read as today's shape through
/// the upcasters, newer ones are refused, and both decoders agree.
@Suite struct EventSchemaTests {
    @Test func orderlysTableCoversEveryTypeWithoutGaps() {
        #expect(Set(EventSchemas.orderly.byType.keys) == Set(OrderEvent.typeNames))
        #expect(EventSchemas.orderly.gaps.isEmpty)
    }

    /// A made-up history of `OrderPlaced` to drive the mechanism: v1 called
    /// the customer `buyer` and the lines `items` with `price_cents`; v2
    /// renamed `buyer`; v3 is today's shape.
    static let evolved: EventSchemas = {
        var table = EventSchemas.orderly.byType
        table["OrderPlaced"] = .init(current: 3, upcasters: [
            1: { fields throws(EventDecodingError) in
                guard fields.contains(where: { $0.0 == "buyer" }) else { throw EventDecodingError("OrderPlaced v1 payload: field buyer is missing") }
                return fields.map { $0.0 == "buyer" ? ("customer", $0.1) : $0 }
            },
            2: { fields in
                fields.map { name, value in
                    guard name == "items", case .array(let items) = value else { return (name, value) }
                    return ("lines", .array(items.map { item in
                        guard case .object(let parts) = item else { return item }
                        return .object(parts.map { $0.0 == "price_cents" ? ("unit_price_cents", $0.1) : $0 })
                    }))
                }
            },
        ])
        return EventSchemas(table)
    }()

    static let placed = OrderEvent.orderPlaced(customer: "c-1", lines: [OrderLine(sku: "SKU-1", qty: 2, unitPriceCents: 150)], totalCents: 300)

    static func decodeBoth(_ typeName: String, _ payload: String, _ schemas: EventSchemas) -> (Result<OrderEvent, EventDecodingError>, Result<OrderEvent, EventDecodingError>) {
        let fromText = Result { () throws(EventDecodingError) in try OrderEvent.decode(typeName: typeName, payload: payload, schemas: schemas) }
        var type = typeName
        var text = payload
        let fromBytes = type.withUTF8 { type in
            text.withUTF8 { text in
                Result { () throws(EventDecodingError) in
                    try OrderEvent.decode(typeName: UnsafeRawBufferPointer(type), payload: UnsafeRawBufferPointer(text), schemas: schemas)
                }
            }
        }
        return (fromText, fromBytes)
    }

    @Test func everyOlderVersionReadsAsTodaysShapeStepByStep() throws {
        let payloads = [
            #"{"v":1,"buyer":"c-1","items":[{"sku":"SKU-1","qty":2,"price_cents":150}],"total_cents":300}"#,
            #"{"v":2,"customer":"c-1","items":[{"sku":"SKU-1","qty":2,"price_cents":150}],"total_cents":300}"#,
            #"{"v":3,"customer":"c-1","lines":[{"sku":"SKU-1","qty":2,"unit_price_cents":150}],"total_cents":300}"#,
        ]
        for payload in payloads {
            let (text, bytes) = Self.decodeBoth("OrderPlaced", payload, Self.evolved)
            #expect(try text.get() == Self.placed, "\(payload)")
            #expect(try bytes.get() == Self.placed, "\(payload)")
            // What the feed sends: today's shape, whatever the log holds.
            #expect(try OrderEvent.currentPayload(typeName: "OrderPlaced", payload: payload, schemas: Self.evolved) == payloads[2])
        }
        #expect(Self.placed.payloadJSON(schemas: Self.evolved) == payloads[2])
    }

    @Test func aPayloadOfAnotherVersionIsNeverReadAsTodaysShape() {
        // Today's field names under v1: the v1 upcaster refuses it, and the
        // byte decoder's fast path does not take it for a v3 payload either.
        let mislabelled = #"{"v":1,"customer":"c-1","lines":[{"sku":"SKU-1","qty":2,"unit_price_cents":150}],"total_cents":300}"#
        let (text, bytes) = Self.decodeBoth("OrderPlaced", mislabelled, Self.evolved)
        #expect(throws: EventDecodingError("OrderPlaced v1 payload: field buyer is missing")) { try text.get() }
        #expect(throws: EventDecodingError("OrderPlaced v1 payload: field buyer is missing")) { try bytes.get() }

        // A newer version than this release knows.
        for schemas in [Self.evolved, EventSchemas.orderly] {
            let version = (schemas.current(of: "OrderPlaced") ?? 0) + 1
            let newer = #"{"v":\#(version),"customer":"c-1","lines":[],"total_cents":0}"#
            let (text, bytes) = Self.decodeBoth("OrderPlaced", newer, schemas)
            for result in [text, bytes] {
                #expect(throws: EventDecodingError.self) { try result.get() }
                if case .failure(let error) = result { #expect(error.message.contains("newer than this release reads"), "\(error)") }
            }
        }
        // No version, or not a number.
        for payload in [#"{"customer":"c-1","lines":[],"total_cents":0}"#, #"{"v":"1","paid_cents":1}"#, #"{"v":0,"paid_cents":1}"#] {
            #expect(throws: EventDecodingError.self) { try OrderEvent.decode(typeName: "OrderPaid", payload: payload) }
        }
    }

    @Test func aMissingUpcasterIsAGapAndRefusesItsVersion() {
        var table = Self.evolved.byType
        table["OrderPlaced"] = .init(current: 3, upcasters: [2: Self.evolved.byType["OrderPlaced"]!.upcasters[2]!])
        let gapped = EventSchemas(table)
        #expect(gapped.gaps.map(\.type) == ["OrderPlaced"])
        #expect(gapped.gaps.map(\.version) == [1])
        #expect(throws: EventDecodingError("OrderPlaced payload: no upcaster from schema version 1")) {
            try OrderEvent.decode(typeName: "OrderPlaced", payload: #"{"v":1,"buyer":"c","items":[],"total_cents":0}"#, schemas: gapped)
        }
    }

    @Test func todaysPayloadsPassThroughUntouched() throws {
        let payload = Self.placed.payloadJSON()
        #expect(try OrderEvent.currentPayload(typeName: "OrderPlaced", payload: payload) == payload)
        // Another writer's spacing at the current version is kept as it is.
        let spaced = #"{"v":1, "paid_cents": 5}"#
        #expect(try OrderEvent.currentPayload(typeName: "OrderPaid", payload: spaced) == spaced)
        #expect(try OrderEvent.currentPayload(typeName: "OrderCancelled", payload: #"{"v":1}"#) == #"{"v":1}"#)
    }
}
