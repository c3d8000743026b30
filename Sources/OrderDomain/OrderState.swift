public enum OrderStatus: String, Sendable, Codable {
    case placed, paid, shipped, cancelled
}

public enum PaymentStatus: String, Sendable, Codable {
    case held, applied, refunded
    case partiallyRefunded = "partially_refunded"
}

/// One payment of an order. Once it is not held,
/// `amountCents == appliedCents + refundedCents` always holds.
public struct PaymentRecord: Sendable, Equatable {
    public let id: ClientID
    public let amountCents: Cents
    public var appliedCents: Cents
    public var refundedCents: Cents
    public var heldUntilMs: Int64?
    public var status: PaymentStatus

    public init(id: ClientID, amountCents: Cents, appliedCents: Cents, refundedCents: Cents, heldUntilMs: Int64?, status: PaymentStatus) {
        self.id = id
        self.amountCents = amountCents
        self.appliedCents = appliedCents
        self.refundedCents = refundedCents
        self.heldUntilMs = heldUntilMs
        self.status = status
    }
}

/// The fold of an order's events.
public struct OrderState: Sendable, Equatable {
    public let orderID: ClientID
    /// nil until the order is placed (held payments may exist before).
    public var status: OrderStatus?
    public var customer: String?
    public var lines: [OrderLine] = []
    public var totalCents: Cents = 0
    public var payments: [PaymentRecord] = []
    public var shipmentID: ClientID?
    public var cancelReason: String?
    /// Number of events folded so far (0 = empty stream).
    public var version: Int64 = 0

    public init(orderID: ClientID) {
        self.orderID = orderID
    }

    public var exists: Bool { status != nil }

    /// Money kept towards the order: what payments applied, less refunds of it.
    public var paidCents: Cents { payments.reduce(0) { $0 + $1.appliedCents } }
    public var refundedCents: Cents { payments.reduce(0) { $0 + $1.refundedCents } }
    public var outstandingCents: Cents { max(0, totalCents - paidCents) }

    /// The earliest hold deadline of a held payment (the order's timer).
    public var nextHoldDeadlineMs: Int64? {
        payments.compactMap { $0.status == .held ? $0.heldUntilMs : nil }.min()
    }

    public func payment(_ id: ClientID) -> PaymentRecord? {
        payments.first { $0.id == id }
    }

    func paymentIndex(_ id: ClientID) -> Int? {
        payments.firstIndex { $0.id == id }
    }
}
