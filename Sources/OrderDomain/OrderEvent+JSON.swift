/// Payloads: compact JSON objects with snake_case keys and a schema version
/// `v`, readable with SQLite's json_extract. Optional fields are left out
/// when nil. `decode(typeName:payload:)` is the exact inverse.
extension OrderEvent {
    /// The payload at its type's current schema version in `schemas`.
    /// `after`: the term of the event at the version before, on which this
    /// one was decided, when it differs from the event's own term (see
    /// `StreamEvent.after`); written as `after_term` and `after_leader`.
    public func payloadJSON(schemas: EventSchemas = .orderly, after: Term? = nil) -> String {
        var fields: [(String, JSONValue)] = [("v", .integer(Int64(schemas.current(of: typeName) ?? 1)))]
        switch self {
        case .orderPlaced(let customer, let lines, let total):
            fields += [("customer", .string(customer)), ("lines", .array(lines.map(Self.json(line:)))), ("total_cents", .integer(total))]
        case .paymentReceived(let id, let amount, let heldUntil):
            fields += [("payment_id", .string(id.rawValue)), ("amount_cents", .integer(amount))]
            if let heldUntil { fields.append(("held_until_ms", .integer(heldUntil))) }
        case .paymentApplied(let id, let amount):
            fields += [("payment_id", .string(id.rawValue)), ("amount_cents", .integer(amount))]
        case .paymentRefunded(let id, let amount, let reason):
            fields += [("payment_id", .string(id.rawValue)), ("amount_cents", .integer(amount)), ("reason", .string(reason.rawValue))]
        case .orderPaid(let paid):
            fields.append(("paid_cents", .integer(paid)))
        case .orderCancelled(let reason):
            if let reason { fields.append(("reason", .string(reason))) }
        case .orderShipped(let id):
            fields.append(("shipment_id", .string(id.rawValue)))
        case .conflictRecorded(let code, let detail):
            fields += [("code", .string(code)), ("detail", .string(detail))]
        }
        if let after, after != .none {
            fields += [("after_term", .integer(after.number)), ("after_leader", .string(after.leader))]
        }
        return JSONValue.object(fields).serialized()
    }

    static func json(line: OrderLine) -> JSONValue {
        .object([("sku", .string(line.sku)), ("qty", .integer(Int64(line.qty))), ("unit_price_cents", .integer(line.unitPriceCents))])
    }

    /// The event a stored payload holds, read at its type's current schema
    /// version: an older payload is upcast first (`EventSchemas`), a newer
    /// one refused.
    public static func decode(typeName: String, payload: String, schemas: EventSchemas = .orderly) throws(EventDecodingError) -> OrderEvent {
        try decode(typeName: typeName, json: try JSONValue.parse(payload), schemas: schemas)
    }

    /// The event a stored payload holds and the term it names as the one
    /// it was decided after (`after_term`, `after_leader`; nil when absent).
    public static func decodeStored(typeName: String, payload: String, schemas: EventSchemas = .orderly) throws(EventDecodingError) -> (event: OrderEvent, after: Term?) {
        let json = try JSONValue.parse(payload)
        var after: Term?
        if case .integer(let number)? = json["after_term"], number > 0, case .string(let leader)? = json["after_leader"] {
            after = Term(number: number, leader: leader)
        }
        return (try decode(typeName: typeName, json: json, schemas: schemas), after)
    }

    static func decode(typeName: String, json parsed: JSONValue, schemas: EventSchemas) throws(EventDecodingError) -> OrderEvent {
        let json = try schemas.upcast(typeName: typeName, payload: parsed)
        let fields = PayloadFields(json: json, typeName: typeName)
        switch typeName {
        case "OrderPlaced":
            guard case .array(let items)? = json["lines"] else { throw fields.missing("lines") }
            var lines: [OrderLine] = []
            for item in items {
                let line = PayloadFields(json: item, typeName: typeName)
                guard let qty = Int(exactly: try line.integer("qty")) else { throw line.missing("qty") }
                lines.append(OrderLine(sku: try line.string("sku"), qty: qty, unitPriceCents: try line.integer("unit_price_cents")))
            }
            return .orderPlaced(customer: try fields.string("customer"), lines: lines, totalCents: try fields.integer("total_cents"))
        case "PaymentReceived":
            return .paymentReceived(
                paymentID: try fields.id("payment_id"), amountCents: try fields.integer("amount_cents"),
                heldUntilMs: try fields.optionalInteger("held_until_ms"))
        case "PaymentApplied":
            return .paymentApplied(paymentID: try fields.id("payment_id"), amountCents: try fields.integer("amount_cents"))
        case "PaymentRefunded":
            guard let reason = RefundReason(rawValue: try fields.string("reason")) else { throw fields.missing("reason") }
            return .paymentRefunded(paymentID: try fields.id("payment_id"), amountCents: try fields.integer("amount_cents"), reason: reason)
        case "OrderPaid":
            return .orderPaid(paidCents: try fields.integer("paid_cents"))
        case "OrderCancelled":
            return .orderCancelled(reason: try fields.optionalString("reason"))
        case "OrderShipped":
            return .orderShipped(shipmentID: try fields.id("shipment_id"))
        case "ConflictRecorded":
            return .conflictRecorded(code: try fields.string("code"), detail: try fields.string("detail"))
        default:
            throw EventDecodingError("unknown event type \(typeName)")
        }
    }
}

/// Typed access to a payload's fields with errors that name the field.
struct PayloadFields {
    let json: JSONValue
    let typeName: String

    func missing(_ key: String) -> EventDecodingError {
        EventDecodingError("\(typeName) payload: field \(key) is missing or invalid")
    }

    func string(_ key: String) throws(EventDecodingError) -> String {
        guard case .string(let value)? = json[key] else { throw missing(key) }
        return value
    }

    func optionalString(_ key: String) throws(EventDecodingError) -> String? {
        switch json[key] {
        case nil, .null?: return nil
        case .string(let value)?: return value
        default: throw missing(key)
        }
    }

    func integer(_ key: String) throws(EventDecodingError) -> Int64 {
        guard case .integer(let value)? = json[key] else { throw missing(key) }
        return value
    }

    func optionalInteger(_ key: String) throws(EventDecodingError) -> Int64? {
        switch json[key] {
        case nil, .null?: return nil
        case .integer(let value)?: return value
        default: throw missing(key)
        }
    }

    func id(_ key: String) throws(EventDecodingError) -> ClientID {
        guard let id = ClientID(try string(key)) else { throw missing(key) }
        return id
    }
}
