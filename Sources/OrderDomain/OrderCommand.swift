public struct OrderLineRequest: Sendable, Equatable, Codable {
    public let sku: String
    public let qty: Int

    public init(sku: String, qty: Int) {
        self.sku = sku
        self.qty = qty
    }
}

public struct OrderLine: Sendable, Equatable, Codable {
    public let sku: String
    public let qty: Int
    public let unitPriceCents: Cents

    public init(sku: String, qty: Int, unitPriceCents: Cents) {
        self.sku = sku
        self.qty = qty
        self.unitPriceCents = unitPriceCents
    }

    public var lineTotalCents: Cents { Cents(qty) * unitPriceCents }
}

/// What a client (or a timer) asks of one order.
public enum OrderCommand: Sendable, Equatable {
    case place(customer: String, lines: [OrderLineRequest])
    case pay(paymentID: ClientID, amountCents: Cents)
    case cancel(reason: String?)
    case ship(shipmentID: ClientID)
    /// Timer: refunds held payments whose hold deadline has passed.
    case expireHeldPayments
}

/// The inputs of a decision besides command and state. Time is an input.
public struct DecideContext: Sendable {
    public var nowMs: Int64
    public var catalog: Catalog
    public var holdTimeoutMs: Int64

    public init(nowMs: Int64, catalog: Catalog, holdTimeoutMs: Int64 = 60_000) {
        self.nowMs = nowMs
        self.catalog = catalog
        self.holdTimeoutMs = holdTimeoutMs
    }
}

public enum Outcome: Sendable, Equatable {
    /// Something new was recorded (HTTP 201; cancel answers 200).
    case created
    /// A payment is held until its order arrives (HTTP 202).
    case held
    /// An exact repeat of an earlier command: nothing appended (HTTP 200).
    case replayed
}

public enum DomainError: Error, Sendable, Equatable {
    /// Bad input (400): invalid_customer, no_lines, too_many_lines, invalid_qty, unknown_sku, invalid_amount, invalid_reason.
    case invalid(code: String, message: String)
    /// The order was never placed (404).
    case notFound(message: String)
    /// Refused by the order's state (409): order_id_reused, payment_id_reused,
    /// order_shipped, order_cancelled, order_not_paid, shipment_id_reused.
    case conflict(code: String, message: String)
}

public struct Decision: Sendable, Equatable {
    public let events: [OrderEvent]
    public let outcome: Outcome

    public init(events: [OrderEvent], outcome: Outcome) {
        self.events = events
        self.outcome = outcome
    }
}
