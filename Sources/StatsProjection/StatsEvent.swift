import OrderDomain

/// One event of an order as the stats projection sees it: where it sits in
/// the order's stream, its cluster-wide id, and when it was recorded.
public struct StatsEvent: Sendable, Equatable {
    public let orderID: String
    public let version: Int64
    public let eventID: String
    public let recordedAtMs: Int64
    public let event: OrderEvent

    public init(orderID: String, version: Int64, eventID: String, recordedAtMs: Int64, event: OrderEvent) {
        self.orderID = orderID
        self.version = version
        self.eventID = eventID
        self.recordedAtMs = recordedAtMs
        self.event = event
    }
}
