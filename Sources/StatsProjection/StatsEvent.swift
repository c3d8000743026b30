import OrderDomain

/// One event of an order as the stats projection sees it: where it sits in
/// the order's stream, its cluster-wide id, and when it was recorded.
public struct StatsEvent: Sendable, Equatable {
    public let orderID: String
    public let version: Int64
    public let eventID: String
    public let recordedAtMs: Int64
    public let event: OrderEvent
    /// The term it was decided in (consistent mode): an event of an older
    /// term at or after the version where a newer term began is superseded
    /// and counts for nothing, as the engine's fold leaves it out.
    public let term: Term
    /// The term of the event it was decided after (`StreamEvent.after`).
    public let after: Term?

    public init(
        orderID: String, version: Int64, eventID: String, recordedAtMs: Int64, event: OrderEvent, term: Term = .none,
        after: Term? = nil
    ) {
        self.orderID = orderID
        self.version = version
        self.eventID = eventID
        self.recordedAtMs = recordedAtMs
        self.event = event
        self.term = term
        self.after = after
    }

    /// The term of an event written by `origin` in term number `number`.
    public static func term(_ number: Int64, origin: String) -> Term {
        number > 0 ? Term(number: number, leader: origin) : .none
    }
}
