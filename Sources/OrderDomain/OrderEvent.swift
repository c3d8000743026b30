public enum RefundReason: String, Sendable, Codable {
    case overpayment
    case orderCancelled = "order_cancelled"
    case orderNeverArrived = "order_never_arrived"
    /// Sent back by the leader that merged an order's streams from two sides
    /// of a partition (see `OrderMerge.reconcile`).
    case reconciled
}

/// The facts of an order's stream. Payloads are JSON (see OrderEvent+JSON).
public enum OrderEvent: Sendable, Equatable {
    case orderPlaced(customer: String, lines: [OrderLine], totalCents: Cents)
    /// `heldUntilMs` is set when the order is not there yet: the payment is
    /// held until then, applied if the order arrives, refunded otherwise.
    case paymentReceived(paymentID: ClientID, amountCents: Cents, heldUntilMs: Int64?)
    /// A held payment applied when its order arrived.
    case paymentApplied(paymentID: ClientID, amountCents: Cents)
    case paymentRefunded(paymentID: ClientID, amountCents: Cents, reason: RefundReason)
    case orderPaid(paidCents: Cents)
    case orderCancelled(reason: String?)
    case orderShipped(shipmentID: ClientID)
    /// Two sides of a partition recorded facts that cannot both hold (see
    /// `OrderConflict`); the merge keeps one and records this on the order.
    case conflictRecorded(code: String, detail: String)

    /// Every event type's name, as the log's `type` column holds it.
    public static let typeNames = [
        "OrderPlaced", "PaymentReceived", "PaymentApplied", "PaymentRefunded", "OrderPaid", "OrderCancelled", "OrderShipped", "ConflictRecorded",
    ]

    public var typeName: String {
        switch self {
        case .orderPlaced: return "OrderPlaced"
        case .paymentReceived: return "PaymentReceived"
        case .paymentApplied: return "PaymentApplied"
        case .paymentRefunded: return "PaymentRefunded"
        case .orderPaid: return "OrderPaid"
        case .orderCancelled: return "OrderCancelled"
        case .orderShipped: return "OrderShipped"
        case .conflictRecorded: return "ConflictRecorded"
        }
    }
}

public struct EventDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
