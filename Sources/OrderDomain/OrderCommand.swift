/// What a client (or a timer) asks of one order.
public enum OrderCommand: Sendable, Equatable {
    case place(customer: String, lines: [OrderLineRequest])
    case pay(paymentID: ClientID, amountCents: Cents)
    case cancel(reason: String?)
    case ship(shipmentID: ClientID)
    /// Timer: refunds held payments whose hold deadline has passed.
    case expireHeldPayments
}

/// The inputs of a decision besides command and state. Time is an input, so
/// tests and a simulator can drive it.
public struct DecideContext: Sendable {
    public var nowMs: Int64
    public var catalog: Catalog
    /// How long a payment waits for its order before it is refunded.
    public var holdTimeoutMs: Int64

    public init(nowMs: Int64, catalog: Catalog, holdTimeoutMs: Int64 = 60_000) {
        self.nowMs = nowMs
        self.catalog = catalog
        self.holdTimeoutMs = holdTimeoutMs
    }
}
