import LogStorage
import OrderDomain

extension EventRecord {
    /// The term the event was decided in: its number, led by its origin
    /// (the node that wrote it); `none` for an event written without one.
    public var decidedIn: Term {
        term > 0 ? Term(number: term, leader: origin) : .none
    }

    /// The event as an order's stream holds it, decoded.
    public func streamEvent() throws -> StreamEvent {
        let stored = try OrderEvent.decodeStored(typeName: type, payload: payload)
        return StreamEvent(version: version, eventID: eventID, event: stored.event, term: decidedIn, after: stored.after)
    }
}
