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

    /// Seed 80383's shape (a release build of 583f8cb, `--customers-per-second
    /// 40 --faults restore,upgrade,crash,partition,disk`): term 29's leader
    /// acknowledged a term-17 placement and took a payment after it; a
    /// leader of term 26, deposed but cut off, then wrote a held payment at
    /// version 1. Every fold must keep the placement the newest term went
    /// on from, not the newer-numbered deposed write below it.
    @Test func aDeposedLeadersWriteBelowWhereTheNewestTermBeganIsLeftOutWhenTheNewestTermWentOnFromAnother() {
        let t17 = Term(number: 17, leader: "api-3")
        let t26 = Term(number: 26, leader: "api-1")
        let t29 = Term(number: 29, leader: "api-3")
        let placed = event(1, "c-1", .orderPlaced(customer: "c", lines: [line], totalCents: 1000), t17)
        let stale = StreamEvent(version: 1, eventID: "a-7", event: .paymentReceived(paymentID: ClientID("p-9")!, amountCents: 500, heldUntilMs: 99), term: t26)
        let payment = StreamEvent(
            version: 2, eventID: "c-2", event: .paymentReceived(paymentID: ClientID("p-1")!, amountCents: 1000, heldUntilMs: nil), term: t29,
            after: t17)
        let paid = event(3, "c-3", .orderPaid(paidCents: 1000), t29)
        let all = [placed, stale, payment, paid]
        #expect(OrderMerge.superseded(base: OrderState(orderID: order), all) == ["a-7"])
        for arrival in [all, all.reversed(), [paid, stale, placed, payment]] {
            let state = OrderMerge.fold(OrderState(orderID: order), arrival)
            #expect(state.status == .paid && state.paidCents == 1000 && state.payments.map(\.id.rawValue) == ["p-1"])
            #expect(state.version == 3 && state.newestTerm == t29 && state.headTerm == t29)
        }
        // Until the placement's copy arrives the chain stops at version 2,
        // and below it the older rule decides (as it did for every event
        // written before events named the term they follow).
        #expect(OrderMerge.superseded(base: OrderState(orderID: order), [stale, payment, paid]).isEmpty)
    }

    @Test func theNewestTermsChainKeepsADeposedWriteItWentOnFrom() {
        // Term 26's payment at version 1 reached a majority before term 29
        // was granted: term 29 went on from it, and it stands over the
        // older placement there.
        let t17 = Term(number: 17, leader: "api-3")
        let t26 = Term(number: 26, leader: "api-1")
        let t29 = Term(number: 29, leader: "api-3")
        let placedOld = event(1, "c-1", .orderPlaced(customer: "c", lines: [line], totalCents: 1000), t17)
        let placed = event(1, "a-7", .orderPlaced(customer: "d", lines: [line], totalCents: 1000), t26)
        let cancelled = StreamEvent(version: 2, eventID: "c-2", event: .orderCancelled(reason: nil), term: t29, after: t26)
        let all = [placedOld, placed, cancelled]
        #expect(OrderMerge.superseded(base: OrderState(orderID: order), all) == ["c-1"])
        let state = OrderMerge.fold(OrderState(orderID: order), all)
        #expect(state.customer == "d" && state.status == .cancelled)
    }

    @Test func theTermAnEventFollowsRoundTripsThroughItsPayloadAndTheCheckpoint() throws {
        let after = Term(number: 17, leader: "api-3")
        let event = OrderEvent.paymentReceived(paymentID: ClientID("p-1")!, amountCents: 1000, heldUntilMs: nil)
        let payload = event.payloadJSON(after: after)
        #expect(payload.contains("\"after_term\":17,\"after_leader\":\"api-3\""))
        let stored = try OrderEvent.decodeStored(typeName: event.typeName, payload: payload)
        #expect(stored.event == event && stored.after == after)
        let bytes = try Array(event.typeName.utf8).withUnsafeBytes { type in
            try Array(payload.utf8).withUnsafeBytes { try OrderEvent.decodeStored(typeName: type, payload: $0) }
        }
        #expect(bytes.event == event && bytes.after == after)
        #expect(try OrderEvent.decodeStored(typeName: event.typeName, payload: event.payloadJSON()).after == nil)
        #expect(try OrderEvent.currentPayload(typeName: event.typeName, payload: payload) == payload)

        var state = OrderMerge.fold(OrderState(orderID: order), [self.event(1, "c-1", .orderPlaced(customer: "c", lines: [line], totalCents: 1000), after)])
        #expect(state.headTerm == after)
        state = try OrderState.fromSnapshot(state.snapshotJSON())
        #expect(state.headTerm == after, "a checkpoint keeps the term of its last event")
    }
}
