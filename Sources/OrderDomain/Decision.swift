/// How a command was taken; the HTTP layer maps it to a status code.
public enum Outcome: Sendable, Equatable {
    /// Something new was recorded (HTTP 201; cancel answers 200).
    case created
    /// A payment is held until its order arrives (HTTP 202).
    case held
    /// An exact repeat of an earlier command: nothing appended (HTTP 200).
    case replayed
}

/// Why a command was refused. Codes are stable: clients match on them.
public enum DomainError: Error, Sendable, Equatable {
    /// Bad input (400): invalid_customer, no_lines, too_many_lines,
    /// invalid_qty, unknown_sku, invalid_amount, invalid_reason.
    case invalid(code: String, message: String)
    /// The order was never placed (404).
    case notFound(message: String)
    /// Refused by the order's state (409): order_id_reused, payment_id_reused,
    /// order_shipped, order_cancelled, order_not_paid, shipment_id_reused.
    case conflict(code: String, message: String)
}

/// The events to append (all or none, in this order) and the answer to give.
public struct Decision: Sendable, Equatable {
    public let events: [OrderEvent]
    public let outcome: Outcome

    public init(events: [OrderEvent], outcome: Outcome) {
        self.events = events
        self.outcome = outcome
    }
}
