import OrderDomain

/// What one order adds to the projection, derived from the order's state as
/// the engine folds it (`OrderMerge`: canonical order, merge rules), so an
/// order merged after a partition counts as the order shows.
public struct OrderContribution: Sendable, Equatable {
    public var products: [String: ProductFigures] = [:]
    public var status: String?
    public var placedMinute: Int64?
    public var paidMinute: Int64?
    /// Line totals of a paid or shipped order.
    public var revenueCents: Int64 = 0

    public init() {}

    public static let none = OrderContribution()

    /// The contribution of an order with these events (any order, copies
    /// included: they are folded canonically, an event id once).
    public static func of(_ events: [StatsEvent]) -> OrderContribution {
        of(canonical: canonical(events))
    }

    /// An order's events in the canonical order, each event id once. A
    /// stream written by one leader at a time is already so (one event per
    /// version, rising), and is returned as it is.
    public static func canonical(_ events: [StatsEvent]) -> [StatsEvent] {
        var rising = true
        var index = 1
        while rising && index < events.count {
            rising = events[index - 1].version < events[index].version
            index += 1
        }
        // An event id names one event at one version, so rising versions
        // hold no id twice.
        if rising { return events }
        var seen = Set<String>()
        return events
            .sorted { ($0.version, $0.eventID) < ($1.version, $1.eventID) }
            .filter { seen.insert($0.eventID).inserted }
    }

    /// The contribution of events already in canonical order (`canonical`).
    public static func of(canonical: [StatsEvent]) -> OrderContribution {
        guard let first = canonical.first, let orderID = ClientID(first.orderID) else { return .none }
        var state = OrderState(orderID: orderID)
        var placedAt: Int64?
        var paidAt: Int64?
        let superseded = canonical.contains { $0.term != .none }
            ? OrderMerge.superseded(
                base: state, canonical.map { StreamEvent(version: $0.version, eventID: $0.eventID, event: $0.event, term: $0.term, after: $0.after) })
            : []
        for stored in canonical where !superseded.contains(stored.eventID) {
            OrderDecider.evolve(&state, stored.event)
            if placedAt == nil && state.exists { placedAt = stored.recordedAtMs }
            if paidAt == nil && (state.status == .paid || state.status == .shipped) { paidAt = stored.recordedAtMs }
        }
        guard let status = state.status else { return .none }
        var contribution = OrderContribution()
        contribution.status = status.rawValue
        contribution.placedMinute = placedAt.map(minute)
        let paid = status == .paid || status == .shipped
        if paid { contribution.paidMinute = paidAt.map(minute) }
        for line in state.lines {
            var figures = contribution.products[line.sku, default: ProductFigures()]
            let quantity = Int64(line.qty)
            figures.unitsOrdered &+= quantity
            if paid {
                figures.unitsPaid &+= quantity
                figures.revenueCents &+= line.lineTotalCents
                contribution.revenueCents &+= line.lineTotalCents
            }
            if status == .shipped { figures.unitsShipped &+= quantity }
            if status == .cancelled && state.refundedCents > 0 { figures.unitsRefunded &+= quantity }
            contribution.products[line.sku] = figures
        }
        return contribution
    }

    static func minute(_ ms: Int64) -> Int64 { ms >= 0 ? ms / 60_000 : (ms - 59_999) / 60_000 }
}

/// Folding batches of events into the projection.
public enum StatsFold {
    /// A batch against the events already counted for the orders it
    /// touches: the events that are new (an event id already counted, or
    /// twice in the batch, is dropped) and the change to the totals. Any
    /// split of the same events into batches, in any order, sums to the
    /// same totals.
    public static func apply(_ batch: [StatsEvent], held: [String: [StatsEvent]]) -> (new: [StatsEvent], delta: StatsTotals) {
        var byOrder: [String: [StatsEvent]] = [:]
        var fresh: [StatsEvent] = []
        var seen = Set<String>()
        for (_, events) in held { for event in events { seen.insert(event.eventID) } }
        for event in batch where seen.insert(event.eventID).inserted {
            byOrder[event.orderID, default: []].append(event)
            fresh.append(event)
        }
        var delta = StatsTotals()
        for (order, added) in byOrder {
            let before = held[order] ?? []
            delta.add(OrderContribution.of(before), sign: -1)
            delta.add(OrderContribution.of(before + added), sign: 1)
        }
        return (fresh, delta)
    }

    /// The projection of a whole set of events (the rebuild).
    public static func totals(of events: [StatsEvent]) -> StatsTotals {
        var byOrder: [String: [StatsEvent]] = [:]
        for event in events { byOrder[event.orderID, default: []].append(event) }
        var totals = StatsTotals()
        for events in byOrder.values { totals.add(OrderContribution.of(events)) }
        return totals
    }
}
