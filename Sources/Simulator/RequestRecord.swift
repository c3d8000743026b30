/// One operation of a customer, as measured.
public struct RequestRecord: Sendable {
    public let phase: String
    /// place, pay, pay_early, pay_again, status, cancel.
    public let operation: String
    public let orderID: String
    /// When it was meant to be sent, from the start of its phase: latency is
    /// measured from here, so a stalled system cannot hide its queueing
    /// (no coordinated omission).
    public let intendedMs: Int64
    public let endMs: Int64
    public let status: Int
    public let attempts: Int
    /// nil when it succeeded; else a kind: http_5xx, http_4xx, connection, timeout.
    public let error: String?

    public var latencyMs: Int64 { max(0, endMs - intendedMs) }
    public var ok: Bool { error == nil }
}

/// What the cluster acknowledged to one customer.
public struct AcknowledgedOrder: Sendable {
    public let orderID: String
    public var placed = false
    public var totalCents: Int64 = 0
    public var payments: [String: Int64] = [:]
    public var cancelled = false
}
