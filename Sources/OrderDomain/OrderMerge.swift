/// One event of an order's stream as a log holds it: its stream version,
/// its cluster-wide id (origin, log and offset; see EventLog), the term its
/// leader decided it in, and the term of the event it was decided after.
public struct StreamEvent: Sendable, Equatable {
    public let version: Int64
    public let eventID: String
    public let event: OrderEvent
    public let term: Term
    /// The term of the event at `version - 1` that its leader decided this
    /// one after, when that is another term than `term`: a leader's first
    /// event of the order in a new term. Nil for an event that follows one
    /// of its own term, the first event of a stream, an event written
    /// without a term, or one written before events named it (a leader of
    /// one term writes one event per version, so the event of `term` at
    /// `version - 1`, when there is one, is the one it followed).
    public let after: Term?

    public init(version: Int64, eventID: String, event: OrderEvent, term: Term = .none, after: Term? = nil) {
        self.version = version
        self.eventID = eventID
        self.event = event
        self.term = term
        self.after = after
    }
}

/// Merging an order's streams from two sides of a partition (available
/// mode, DESIGN §6). Pure.
///
/// One leader at a time writes a linear stream: one event per version. Two
/// sides of a partition can each lead the order and write the same versions.
/// When they heal, each node holds the union of both streams (by event id,
/// copied with INSERT OR IGNORE) and folds it in one canonical order, by
/// version and then event id, so every node and every arrival order of the
/// copies gives the same state. `evolve` is total and settles what two sides
/// can disagree on by rule:
///
/// - payments add up: every payment id either side received counts once;
/// - a refund is identified by payment and reason, so one both sides issued
///   counts once;
/// - a shipment stands over a cancellation, and an order ships once;
/// - what no rule settles (another body for the same order id, another
///   amount for the same payment id, two shipment ids, two refunds of one
///   payment for one reason with different amounts) is an `OrderConflict`.
///
/// The merged state can then break invariants a single leader keeps (a held
/// payment on a placed order, money kept by a cancelled order, more paid
/// than the total): `reconcile` gives the events the leader appends to
/// restore them and to record the conflicts, in the order's stream like any
/// other decision.
public enum OrderMerge {
    /// The canonical order: by version, then event id; an event id once.
    public static func canonical(_ events: [StreamEvent]) -> [StreamEvent] {
        var seen = Set<String>()
        return events
            .sorted { ($0.version, $0.eventID) < ($1.version, $1.eventID) }
            .filter { seen.insert($0.eventID).inserted }
    }

    /// Folds events onto `base` (an empty state or a checkpoint's) in the
    /// canonical order, leaving out the superseded ones (see `superseded`).
    /// The stream goes on after the highest version seen.
    public static func fold(_ base: OrderState, _ events: [StreamEvent]) -> OrderState {
        var state = base
        var version = base.version
        let dropped = superseded(base: base, events)
        // Reconciled refunds add up, except copies of one repair: two nodes
        // that led the order at once after a heal repair the same merged
        // state, so they write the same refund at the same version.
        var repairs: Set<String> = []
        for stored in canonical(events) where !dropped.contains(stored.eventID) {
            if case .paymentRefunded(let payment, let amount, .reconciled) = stored.event,
                !repairs.insert("\(stored.version) \(payment.rawValue) \(amount)").inserted
            {
                continue
            }
            OrderDecider.evolve(&state, stored.event)
            version = max(version, stored.version)
            state.headTerm = stored.term == .none ? nil : stored.term
        }
        state.version = version
        state.newestTerm = max(base.newestTerm, events.map(\.term).max() ?? .none)
        return state
    }

    /// The events a newer term overrules. A leader writes in a term only
    /// after a majority of the order's replicas granted it and promised to
    /// acknowledge nothing of older terms, so such an event was never
    /// acknowledged: a deposed leader's write that reached the logs all the
    /// same. Every node computes the same set from the same events; with no
    /// terms (available mode) it is empty and the merge rules apply.
    ///
    /// 1. The newest term's chain: from the newest term's last event, each
    ///    event's predecessor is the event at the version before of the
    ///    term it names (`StreamEvent.after`, else its own). At each version
    ///    the chain reaches, every other event is overruled, whatever its
    ///    term: the newest leader decided on the chain's event. (Found by
    ///    seed 80383, `--customers-per-second 40 --faults restore,upgrade,
    ///    crash,partition,disk`, a release build of 583f8cb: term 29's
    ///    leader went on after a term-17 placement at version 1; a leader of
    ///    term 26, deposed but cut off, then wrote a held payment at version
    ///    1, and rule 2 alone kept it over the placement.)
    /// 2. Below where the chain stops (an event not copied here yet, or one
    ///    written before events named their predecessor's term), and above
    ///    it: an event of an older term at or after the version where a
    ///    newer term began (its first event of the order, or before
    ///    `base`'s version for a term `base` folded).
    public static func superseded(base: OrderState, _ events: [StreamEvent]) -> Set<String> {
        var dropped: Set<String> = []
        var newest = base.newestTerm
        var index = 0
        let ordered = canonical(events)
        var tip: StreamEvent?
        while index < ordered.count {
            let version = ordered[index].version
            var end = index
            while end < ordered.count && ordered[end].version == version { end += 1 }
            for event in ordered[index..<end] { newest = max(newest, event.term) }
            for event in ordered[index..<end] where event.term < newest { dropped.insert(event.eventID) }
            for event in ordered[index..<end] where event.term != .none && event.term >= (tip?.term ?? .none) { tip = event }
            index = end
        }
        guard var link = tip, link.term == newest else { return dropped }
        var byVersion: [Int64: [StreamEvent]] = [:]
        for event in ordered where event.version < link.version && event.version > base.version {
            byVersion[event.version, default: []].append(event)
        }
        while let before = byVersion[link.version - 1] {
            let wanted = link.after ?? link.term
            guard let parent = before.first(where: { $0.term == wanted }) else { break }
            dropped.remove(parent.eventID)
            for other in before where other.eventID != parent.eventID { dropped.insert(other.eventID) }
            link = parent
        }
        return dropped
    }

    /// The events that restore a single leader's invariants on a merged
    /// state; empty for any state a linear stream reaches, and empty again
    /// once these are folded:
    ///
    /// 1. no payment stays held on an order that exists (applied up to what
    ///    is outstanding, the rest refunded, as placing the order would), and
    ///    every payment's money is either kept or sent back;
    /// 2. a cancelled order keeps no money;
    /// 3. an order keeps at most its total: the newest payments give back the
    ///    excess;
    /// 4. a placed order with nothing outstanding is paid;
    /// 5. every conflict is recorded in the stream, including `underpaid`: a
    ///    paid order whose merged payments keep less than its total.
    public static func reconcile(_ state: OrderState) -> [OrderEvent] {
        var events: [OrderEvent] = []
        var work = state
        // Before the order exists, held payments are the timer's work.
        if let status = state.status { settleMoney(status: status, work: &work, events: &events) }
        // Last, as folding the repair can meet conflicts too.
        events += work.conflicts.filter { !$0.recorded }.map { .conflictRecorded(code: $0.code, detail: $0.detail) }
        return events
    }

    private static func settleMoney(status: OrderStatus, work: inout OrderState, events: inout [OrderEvent]) {
        let settled = OrderDecider.settleHeldPayments(of: work, status: status, outstandingCents: work.outstandingCents).events
        events += settled
        work = OrderDecider.fold(work, settled)

        // Money of a payment neither kept nor sent back (the excess of a held
        // payment whose refund the other side's copy stood in for).
        let unallocated: [OrderEvent] = work.payments.compactMap { payment in
            let cents = payment.amountCents.subtractingSaturating(payment.appliedCents).subtractingSaturating(payment.refundedCents)
            guard payment.status != .held, cents > 0 else { return nil }
            return .paymentRefunded(paymentID: payment.id, amountCents: cents, reason: .reconciled)
        }
        events += unallocated
        work = OrderDecider.fold(work, unallocated)

        var refunds: [OrderEvent] = []
        if status == .cancelled {
            for payment in work.payments where payment.appliedCents > 0 {
                refunds.append(.paymentRefunded(paymentID: payment.id, amountCents: payment.appliedCents, reason: .reconciled))
            }
        } else {
            var excess = work.paidCents.subtractingSaturating(work.totalCents)
            for payment in work.payments.reversed() where excess > 0 && payment.appliedCents > 0 {
                let refund = min(excess, payment.appliedCents)
                refunds.append(.paymentRefunded(paymentID: payment.id, amountCents: refund, reason: .reconciled))
                excess -= refund
            }
        }
        events += refunds
        work = OrderDecider.fold(work, refunds)

        if work.status == .placed && work.outstandingCents == 0 {
            let paid = OrderEvent.orderPaid(paidCents: work.totalCents)
            events.append(paid)
            OrderDecider.evolve(&work, paid)
        }
        // Paid on one side while the other sent the money back (a held
        // payment refunded as never arrived, or taken with another amount):
        // the status cannot go back, so people must settle it.
        if (work.status == .paid || work.status == .shipped) && work.paidCents < work.totalCents {
            work.noteConflict("underpaid", "paid on one side, but the merged payments keep \(work.paidCents) of \(work.totalCents) cents")
        }
    }
}
