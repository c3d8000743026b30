import OrderDomain
import Testing

/// Fencing in an order's fold: a deposed leader's write that reached the
/// logs is left out where a newer term already wrote, the same way on every
/// node, so every (order, version) folds to one event.
@Suite struct SupersededTests {
    let order = ClientID("o-1")!
    let old = Term(number: 7, leader: "api-1")
    let new = Term(number: 8, leader: "api-2")
    var line: OrderLine { OrderLine(sku: "SKU-1", qty: 1, unitPriceCents: 1000) }

    func event(_ version: Int64, _ id: String, _ event: OrderEvent, _ term: Term) -> StreamEvent {
        StreamEvent(version: version, eventID: id, event: event, term: term)
    }

    var placed: StreamEvent { event(1, "a-1", .orderPlaced(customer: "c", lines: [line], totalCents: 1000), old) }
    var paid: [StreamEvent] {
        [event(2, "a-2", .paymentReceived(paymentID: ClientID("p-1")!, amountCents: 1000, heldUntilMs: nil), old),
         event(3, "a-3", .orderPaid(paidCents: 1000), old)]
    }

    @Test func aDeposedLeadersWriteAtTheVersionANewerTermBeganIsLeftOut() {
        // The old leader, cut off, shipped at version 4 (never acknowledged);
        // the new leader, with the order gathered through version 3,
        // cancelled at version 4.
        let shipped = event(4, "a-4", .orderShipped(shipmentID: ClientID("wms-1")!), old)
        let cancelled = event(4, "b-1", .orderCancelled(reason: nil), new)
        let refund = event(5, "b-2", .paymentRefunded(paymentID: ClientID("p-1")!, amountCents: 1000, reason: .orderCancelled), new)
        let all = [placed] + paid + [shipped, cancelled, refund]
        #expect(OrderMerge.superseded(base: OrderState(orderID: order), all) == ["a-4"])
        for arrival in [all, all.reversed(), [refund, shipped, cancelled] + paid + [placed]] {
            let state = OrderMerge.fold(OrderState(orderID: order), arrival)
            #expect(state.status == .cancelled && state.conflicts.isEmpty && state.paidCents == 0)
            #expect(state.version == 5 && state.newestTerm == new)
        }
    }

    @Test func aDeposedLeadersWriteBelowTheNewerTermIsAdopted() {
        // The new leader gathered the old leader's unacknowledged payment
        // (version 2) and went on after it: it stands.
        let apply = event(3, "b-1", .orderPaid(paidCents: 1000), new)
        let all = [placed, paid[0], apply]
        #expect(OrderMerge.superseded(base: OrderState(orderID: order), all).isEmpty)
        #expect(OrderMerge.fold(OrderState(orderID: order), all).status == .paid)
    }

    @Test func aTermFoldedIntoACheckpointStillOverrulesLaterStaleWrites() {
        let newer = event(2, "b-1", .paymentReceived(paymentID: ClientID("p-2")!, amountCents: 1000, heldUntilMs: nil), new)
        let checkpoint = OrderMerge.fold(OrderState(orderID: order), [placed, newer])
        let restored = try! OrderState.fromSnapshot(checkpoint.snapshotJSON())
        #expect(restored.newestTerm == new, "the checkpoint keeps the newest term")
        // The old leader's write at version 3, after the checkpoint.
        let stale = event(3, "a-9", .orderCancelled(reason: nil), old)
        #expect(OrderMerge.superseded(base: restored, [stale]) == ["a-9"])
        #expect(OrderMerge.fold(restored, [stale]).status == .placed)
    }

    @Test func withoutTermsEveryEventIsFoldedByTheMergeRules() {
        let a = event(2, "a-2", .orderCancelled(reason: nil), .none)
        let b = event(2, "b-2", .orderCancelled(reason: "x"), .none)
        let base = OrderMerge.fold(OrderState(orderID: order), [event(1, "a-1", .orderPlaced(customer: "c", lines: [line], totalCents: 1000), .none)])
        #expect(OrderMerge.superseded(base: base, [a, b]).isEmpty)
        #expect(OrderMerge.fold(base, [a, b]).status == .cancelled)
    }
}
