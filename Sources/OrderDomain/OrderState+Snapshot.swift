/// Checkpoint encoding: the whole state as JSON, round-tripping exactly, so
/// activation can start from a checkpoint instead of the whole stream.
/// `paidCents` is derived from the payments and not stored.
extension OrderState {
    public static let snapshotVersion: Int64 = 1

    /// `eventsHeld`: how many events of the order at or below `version`
    /// the log held when this state was folded (superseded and merged ones
    /// included), kept so that a checkpoint built on this one can say what
    /// it covers (`Checkpoint.coveredEvents`).
    public func snapshotJSON(eventsHeld: Int64? = nil) -> String {
        var fields: [(String, JSONValue)] = [
            ("snapshot_v", .integer(Self.snapshotVersion)),
            ("order_id", .string(orderID.rawValue)),
            ("version", .integer(version)),
            ("lines", .array(lines.map(OrderEvent.json(line:)))),
            ("total_cents", .integer(totalCents)),
            ("payments", .array(payments.map(Self.json(payment:)))),
        ]
        if let status { fields.append(("status", .string(status.rawValue))) }
        if let customer { fields.append(("customer", .string(customer))) }
        if let shipmentID { fields.append(("shipment_id", .string(shipmentID.rawValue))) }
        if let cancelReason { fields.append(("cancel_reason", .string(cancelReason))) }
        if newestTerm != .none {
            fields.append(("term", .integer(newestTerm.number)))
            fields.append(("term_leader", .string(newestTerm.leader)))
        }
        if let headTerm {
            fields.append(("head_term", .integer(headTerm.number)))
            fields.append(("head_leader", .string(headTerm.leader)))
        }
        if let eventsHeld { fields.append(("events_held", .integer(eventsHeld))) }
        if !conflicts.isEmpty {
            fields.append(("conflicts", .array(conflicts.map {
                .object([("code", .string($0.code)), ("detail", .string($0.detail)), ("recorded", .bool($0.recorded))])
            })))
        }
        return JSONValue.object(fields).serialized()
    }

    private static func json(payment: PaymentRecord) -> JSONValue {
        var fields: [(String, JSONValue)] = [
            ("id", .string(payment.id.rawValue)), ("amount_cents", .integer(payment.amountCents)),
            ("applied_cents", .integer(payment.appliedCents)), ("refunded_cents", .integer(payment.refundedCents)),
            ("status", .string(payment.status.rawValue)), ("first_outcome", .string(payment.firstOutcome.rawValue)),
        ]
        if let held = payment.heldUntilMs { fields.append(("held_until_ms", .integer(held))) }
        if !payment.refunds.isEmpty {
            fields.append(("refunds", .object(payment.refunds.map { ($0.key.rawValue, .integer($0.value)) }.sorted { $0.0 < $1.0 })))
        }
        return .object(fields)
    }

    /// The `eventsHeld` a snapshot was written with; nil when it has none.
    public static func eventsHeld(inSnapshot text: String) -> Int64? {
        guard let json = try? JSONValue.parse(text) else { return nil }
        return try? PayloadFields(json: json, typeName: "snapshot").optionalInteger("events_held")
    }

    public static func fromSnapshot(_ text: String) throws(EventDecodingError) -> OrderState {
        let json = try JSONValue.parse(text)
        let fields = PayloadFields(json: json, typeName: "snapshot")
        guard try fields.integer("snapshot_v") == snapshotVersion else { throw EventDecodingError("unknown snapshot version") }
        var state = OrderState(orderID: try fields.id("order_id"))
        state.version = try fields.integer("version")
        state.totalCents = try fields.integer("total_cents")
        if let status = try fields.optionalString("status") {
            guard let parsed = OrderStatus(rawValue: status) else { throw fields.missing("status") }
            state.status = parsed
        }
        state.customer = try fields.optionalString("customer")
        if let shipment = try fields.optionalString("shipment_id") {
            guard let id = ClientID(shipment) else { throw fields.missing("shipment_id") }
            state.shipmentID = id
        }
        state.cancelReason = try fields.optionalString("cancel_reason")
        if let number = try fields.optionalInteger("term") {
            state.newestTerm = Term(number: number, leader: try fields.optionalString("term_leader") ?? "")
        }
        if let number = try fields.optionalInteger("head_term") {
            state.headTerm = Term(number: number, leader: try fields.optionalString("head_leader") ?? "")
        }
        guard case .array(let lines)? = json["lines"], case .array(let payments)? = json["payments"] else {
            throw fields.missing("lines/payments")
        }
        for item in lines {
            let line = PayloadFields(json: item, typeName: "snapshot line")
            guard let qty = Int(exactly: try line.integer("qty")) else { throw line.missing("qty") }
            state.lines.append(OrderLine(sku: try line.string("sku"), qty: qty, unitPriceCents: try line.integer("unit_price_cents")))
        }
        for item in payments {
            let payment = PayloadFields(json: item, typeName: "snapshot payment")
            guard let status = PaymentStatus(rawValue: try payment.string("status")) else { throw payment.missing("status") }
            let heldUntil = try payment.optionalInteger("held_until_ms")
            // Checkpoints written before first_outcome existed: a held payment
            // answered held, any other answered applied or refunded.
            let firstOutcome: PaymentStatus
            if let raw = try payment.optionalString("first_outcome") {
                guard let parsed = PaymentStatus(rawValue: raw) else { throw payment.missing("first_outcome") }
                firstOutcome = parsed
            } else {
                firstOutcome = heldUntil != nil ? .held : (status == .refunded ? .refunded : .applied)
            }
            var record = PaymentRecord(
                id: try payment.id("id"), amountCents: try payment.integer("amount_cents"),
                appliedCents: try payment.integer("applied_cents"), refundedCents: try payment.integer("refunded_cents"),
                heldUntilMs: heldUntil, status: status, firstOutcome: firstOutcome)
            if case .object(let refunds)? = item["refunds"] {
                for (raw, amount) in refunds {
                    guard let reason = RefundReason(rawValue: raw), case .integer(let cents) = amount else { throw payment.missing("refunds") }
                    record.refunds[reason] = cents
                }
            }
            state.payments.append(record)
        }
        if case .array(let conflicts)? = json["conflicts"] {
            for item in conflicts {
                let conflict = PayloadFields(json: item, typeName: "snapshot conflict")
                guard case .bool(let recorded)? = item["recorded"] else { throw conflict.missing("recorded") }
                state.conflicts.append(OrderConflict(code: try conflict.string("code"), detail: try conflict.string("detail"), recorded: recorded))
            }
        }
        return state
    }
}
