/// Decoding straight from the bytes of a stored row, for readers that go
/// through millions of events (the stats rebuild).
///
/// The fast path reads only the exact text `payloadJSON()` writes: compact,
/// the fields in their order, strings of printable ASCII without escapes,
/// integers without leading zeros. Text of that form is a JSON object with
/// exactly those fields, so it decodes to what `decode(typeName:payload:)`
/// gives. Anything else (spaces, other field orders, escapes, non-ASCII,
/// extra or null fields, errors) goes to `decode(typeName:payload:)`, which
/// makes the answer, or the error, the same in every case.
extension OrderEvent {
    public static func decode(
        typeName: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, schemas: EventSchemas = .orderly
    ) throws(EventDecodingError) -> OrderEvent {
        try decodeStored(typeName: typeName, payload: payload, schemas: schemas).event
    }

    /// `decodeStored(typeName:payload:)` from a row's bytes.
    public static func decodeStored(
        typeName: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, schemas: EventSchemas = .orderly
    ) throws(EventDecodingError) -> (event: OrderEvent, after: Term?) {
        if let stored = canonical(typeName: typeName, payload: payload, schemas: schemas) { return stored }
        return try decodeStored(typeName: String(decoding: typeName, as: UTF8.self), payload: String(decoding: payload, as: UTF8.self), schemas: schemas)
    }

    /// The event when the payload is in canonical form at its type's current
    /// schema version, else nil (an older version goes to the upcasters).
    static func canonical(typeName: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, schemas: EventSchemas) -> (event: OrderEvent, after: Term?)? {
        var reader = CanonicalReader(payload)
        guard reader.literal("{\"v\":"), let version = reader.integer() else { return nil }
        let event: OrderEvent
        if Self.equal(typeName, "PaymentReceived") {
            guard reader.literal(",\"payment_id\":"), let id = reader.id(), reader.literal(",\"amount_cents\":"), let amount = reader.integer() else { return nil }
            var heldUntil: Int64?
            if reader.literal(",\"held_until_ms\":") {
                guard let value = reader.integer() else { return nil }
                heldUntil = value
            }
            event = .paymentReceived(paymentID: id, amountCents: amount, heldUntilMs: heldUntil)
        } else if Self.equal(typeName, "OrderPlaced") {
            guard reader.literal(",\"customer\":"), let customer = reader.string(), reader.literal(",\"lines\":[") else { return nil }
            var lines: [OrderLine] = []
            if !reader.literal("]") {
                repeat {
                    guard reader.literal("{\"sku\":"), let sku = reader.string(), reader.literal(",\"qty\":"), let qty = reader.integer(),
                        let quantity = Int(exactly: qty), reader.literal(",\"unit_price_cents\":"), let price = reader.integer(),
                        reader.literal("}")
                    else { return nil }
                    lines.append(OrderLine(sku: sku, qty: quantity, unitPriceCents: price))
                } while reader.literal(",")
                guard reader.literal("]") else { return nil }
            }
            guard reader.literal(",\"total_cents\":"), let total = reader.integer() else { return nil }
            event = .orderPlaced(customer: customer, lines: lines, totalCents: total)
        } else if Self.equal(typeName, "OrderPaid") {
            guard reader.literal(",\"paid_cents\":"), let paid = reader.integer() else { return nil }
            event = .orderPaid(paidCents: paid)
        } else if Self.equal(typeName, "OrderShipped") {
            guard reader.literal(",\"shipment_id\":"), let id = reader.id() else { return nil }
            event = .orderShipped(shipmentID: id)
        } else if Self.equal(typeName, "PaymentApplied") {
            guard reader.literal(",\"payment_id\":"), let id = reader.id(), reader.literal(",\"amount_cents\":"), let amount = reader.integer() else { return nil }
            event = .paymentApplied(paymentID: id, amountCents: amount)
        } else if Self.equal(typeName, "PaymentRefunded") {
            guard reader.literal(",\"payment_id\":"), let id = reader.id(), reader.literal(",\"amount_cents\":"), let amount = reader.integer(),
                reader.literal(",\"reason\":"), let text = reader.string(), let reason = RefundReason(rawValue: text)
            else { return nil }
            event = .paymentRefunded(paymentID: id, amountCents: amount, reason: reason)
        } else if Self.equal(typeName, "OrderCancelled") {
            var reason: String?
            if reader.literal(",\"reason\":") {
                guard let text = reader.string() else { return nil }
                reason = text
            }
            event = .orderCancelled(reason: reason)
        } else {
            // ConflictRecorded is rare, and its detail is free text.
            return nil
        }
        var after: Term?
        if reader.literal(",\"after_term\":") {
            guard let number = reader.integer(), number > 0, reader.literal(",\"after_leader\":"), let leader = reader.string() else { return nil }
            after = Term(number: number, leader: leader)
        }
        guard reader.literal("}"), reader.atEnd else { return nil }
        guard version == schemas.uniformCurrent.map(Int64.init) ?? schemas.current(of: event.typeName).map(Int64.init) else { return nil }
        return (event, after)
    }

    private static func equal(_ bytes: UnsafeRawBufferPointer, _ text: StaticString) -> Bool {
        guard bytes.count == text.utf8CodeUnitCount else { return false }
        return text.withUTF8Buffer { expected in
            for index in 0..<expected.count where bytes[index] != expected[index] { return false }
            return true
        }
    }
}

/// A cursor over canonical JSON text; every read returns nil, leaving the
/// cursor anywhere, when the text is not exactly the expected form.
private struct CanonicalReader {
    let bytes: UnsafeRawBufferPointer
    var position = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var atEnd: Bool { position == bytes.count }

    /// Consumes `text` if the bytes at the cursor are exactly it.
    mutating func literal(_ text: StaticString) -> Bool {
        let count = text.utf8CodeUnitCount
        guard bytes.count - position >= count else { return false }
        let matches = text.withUTF8Buffer { expected in
            UnsafeRawBufferPointer(rebasing: bytes[position..<position + count]).elementsEqual(UnsafeRawBufferPointer(expected))
        }
        if matches { position += count }
        return matches
    }

    /// A string of printable ASCII without escapes.
    mutating func string() -> String? {
        guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { return nil }
        let start = position + 1
        var index = start
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                position = index + 1
                return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            }
            guard byte >= 0x20, byte < 0x7F, byte != UInt8(ascii: "\\") else { return nil }
            index += 1
        }
        return nil
    }

    mutating func id() -> ClientID? {
        guard let text = string() else { return nil }
        return ClientID(text)
    }

    /// An integer as Swift prints an Int64: an optional minus, then "0" or
    /// digits without a leading zero; nil on overflow.
    mutating func integer() -> Int64? {
        var index = position
        let negative = index < bytes.count && bytes[index] == UInt8(ascii: "-")
        if negative { index += 1 }
        let first = index
        var value: Int64 = 0
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
            let digit = Int64(bytes[index] - UInt8(ascii: "0"))
            let (times, overflowTimes) = value.multipliedReportingOverflow(by: 10)
            let (next, overflowAdd) = negative ? times.subtractingReportingOverflow(digit) : times.addingReportingOverflow(digit)
            guard !overflowTimes, !overflowAdd else { return nil }
            value = next
            index += 1
        }
        let digits = index - first
        guard digits > 0, digits == 1 || bytes[first] != UInt8(ascii: "0"), !(negative && value == 0) else { return nil }
        // A fraction or exponent makes it another kind of number.
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") || bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") { return nil }
        position = index
        return value
    }
}
