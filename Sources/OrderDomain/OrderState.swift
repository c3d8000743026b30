public enum OrderStatus: String, Sendable, Codable {
    case placed, paid, shipped, cancelled
}

public enum PaymentStatus: String, Sendable, Codable {
    case held, applied, refunded
    case partiallyRefunded = "partially_refunded"
}

/// One payment of an order, in the order's stream like any other fact.
///
/// Money model: `appliedCents` is what the order keeps of the payment, net
/// of refunds; `refundedCents` is what went back. Once the payment is not
/// held, `amountCents == appliedCents + refundedCents` after every decision
/// (between two events of one decision it may not be, e.g. after
/// `paymentApplied` and before the refund of the excess; decisions are
/// appended whole).
public struct PaymentRecord: Sendable, Equatable {
    public let id: ClientID
    /// As received.
    public let amountCents: Cents
    /// Kept towards the order (0 while held).
    public var appliedCents: Cents
    public var refundedCents: Cents
    /// Non-nil while held: when the payment is refunded if no order came.
    public var heldUntilMs: Int64?
    public var status: PaymentStatus
    /// What the first answer to this payment said: held (202), applied or
    /// refunded (201). A repeat of the payment answers from it.
    public let firstOutcome: PaymentStatus
    /// The refunds so far, by reason, as their events asked. A refund is
    /// identified by payment and reason (as a payment provider's idempotency
    /// key would): one stream refunds a payment at most once per reason, so a
    /// second refund with the same reason is the copy of a decision both
    /// sides of a partition took and is not counted again. `reconciled`
    /// refunds add up.
    public var refunds: [RefundReason: Cents] = [:]

    public init(
        id: ClientID, amountCents: Cents, appliedCents: Cents, refundedCents: Cents, heldUntilMs: Int64?,
        status: PaymentStatus, firstOutcome: PaymentStatus
    ) {
        self.id = id
        self.amountCents = amountCents
        self.appliedCents = appliedCents
        self.refundedCents = refundedCents
        self.heldUntilMs = heldUntilMs
        self.status = status
        self.firstOutcome = firstOutcome
    }
}

/// The fold of an order's events (see `OrderDecider.evolve`).
public struct OrderState: Sendable, Equatable {
    public let orderID: ClientID
    /// nil until the order is placed (held payments may exist before).
    public var status: OrderStatus?
    public var customer: String?
    public var lines: [OrderLine] = []
    public var totalCents: Cents = 0
    /// In arrival order.
    public var payments: [PaymentRecord] = []
    public var shipmentID: ClientID?
    public var cancelReason: String?
    /// Facts from two sides of a partition that could not both hold, in the
    /// order the merge met them (never set for a stream written by one
    /// leader at a time).
    public var conflicts: [OrderConflict] = []
    /// Number of events folded so far (0 = empty stream): the stream version
    /// the next event is appended after.
    public var version: Int64 = 0
    /// The newest term among the events folded (see `OrderMerge.superseded`):
    /// an event of an older term after them is a deposed leader's.
    public var newestTerm: Term = .none
    /// The term of the event at `version`, the one the next event is
    /// decided after (`StreamEvent.after`); nil when it has none (an empty
    /// stream, an event written without a term) or it is unknown (a
    /// checkpoint written before it was kept).
    public var headTerm: Term?

    public init(orderID: ClientID) {
        self.orderID = orderID
    }

    public var exists: Bool { status != nil }

    /// Money the order keeps: the sum of the payments' `appliedCents`, which
    /// are already net of refunds. Derived rather than stored so it can never
    /// disagree with the payments (a cancellation refunds every applied cent,
    /// so a cancelled order keeps 0).
    public var paidCents: Cents { payments.lazy.map(\.appliedCents).sumSaturating() }

    /// Money sent back, over all payments.
    public var refundedCents: Cents { payments.lazy.map(\.refundedCents).sumSaturating() }

    /// What is still to pay before the order is paid (0 once paid).
    public var outstandingCents: Cents { max(0, totalCents.subtractingSaturating(paidCents)) }

    /// The earliest hold deadline of a held payment: when the order's timer
    /// must fire `expireHeldPayments`. nil when nothing is held.
    public var nextHoldDeadlineMs: Int64? {
        payments.lazy.filter { $0.status == .held }.compactMap(\.heldUntilMs).min()
    }

    public func payment(_ id: ClientID) -> PaymentRecord? {
        payments.first { $0.id == id }
    }

    func paymentIndex(_ id: ClientID) -> Int? {
        payments.firstIndex { $0.id == id }
    }
}

/// What a merge of two sides' streams could not reconcile by rule: the merge
/// keeps one fact (the first in the canonical order of `OrderMerge`) and the
/// leader records the conflict on the order with a `conflictRecorded` event,
/// so people see it in the order's JSON and its timeline.
public struct OrderConflict: Sendable, Equatable {
    /// placed_twice, payment_amount_differs, refund_differs, shipped_twice,
    /// shipped_and_cancelled.
    public let code: String
    public let detail: String
    /// True once a `conflictRecorded` event for the code is in the stream.
    public var recorded: Bool

    public init(code: String, detail: String, recorded: Bool) {
        self.code = code
        self.detail = detail
        self.recorded = recorded
    }
}
