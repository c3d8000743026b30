import OrderDomain
import Testing

/// `evolve` folds whatever a log holds, including odd sequences a merge of
/// two nodes' logs may produce: it ignores what does not apply.
@Suite struct EvolveTests {
    let line = OrderLine(sku: "S", qty: 1, unitPriceCents: 100)

    @Test func versionCountsEveryEventEvenIgnoredOnes() {
        let state = OrderDecider.fold(OrderState(orderID: id("o")), [
            .orderShipped(shipmentID: id("s")),  // not paid: ignored
            .orderPaid(paidCents: 5),  // not placed: ignored
            .paymentApplied(paymentID: id("nobody"), amountCents: 5),
            .paymentRefunded(paymentID: id("nobody"), amountCents: 5, reason: .overpayment),
        ])
        #expect(state.version == 4)
        #expect(state == {
            var expected = OrderState(orderID: id("o"))
            expected.version = 4
            return expected
        }())
    }

    @Test func aSecondPlacementOrPaymentIsIgnored() {
        let state = OrderDecider.fold(OrderState(orderID: id("o")), [
            .orderPlaced(customer: "a", lines: [line], totalCents: 100),
            .orderPlaced(customer: "b", lines: [], totalCents: 1),
            .paymentReceived(paymentID: id("p"), amountCents: 60, heldUntilMs: nil),
            .paymentReceived(paymentID: id("p"), amountCents: 70, heldUntilMs: nil),
        ])
        #expect(state.customer == "a")
        #expect(state.totalCents == 100)
        #expect(state.payments.count == 1)
        #expect(state.paidCents == 60)
    }

    @Test func statusOnlyMovesForward() {
        let shipped = OrderDecider.fold(OrderState(orderID: id("o")), [
            .orderPlaced(customer: "a", lines: [line], totalCents: 100),
            .orderPaid(paidCents: 100),
            .orderShipped(shipmentID: id("s")),
            .orderCancelled(reason: "late"),
            .orderShipped(shipmentID: id("t")),
        ])
        #expect(shipped.status == .shipped)
        #expect(shipped.shipmentID == id("s"))
        #expect(shipped.cancelReason == nil)

        let cancelled = OrderDecider.fold(OrderState(orderID: id("o")), [
            .orderPlaced(customer: "a", lines: [line], totalCents: 100),
            .orderCancelled(reason: "first"),
            .orderPaid(paidCents: 100),
            .orderCancelled(reason: "second"),
        ])
        #expect(cancelled.status == .cancelled)
        #expect(cancelled.cancelReason == "first")
    }

    @Test func refundsNeverTakeMoreThanThePaymentHasLeft() {
        let state = OrderDecider.fold(OrderState(orderID: id("o")), [
            .orderPlaced(customer: "a", lines: [line], totalCents: 100),
            .paymentReceived(paymentID: id("p"), amountCents: 60, heldUntilMs: nil),
            // Reconciled refunds add up (a repeat of another reason is a copy).
            .paymentRefunded(paymentID: id("p"), amountCents: 50, reason: .reconciled),
            .paymentRefunded(paymentID: id("p"), amountCents: 50, reason: .reconciled),
            .paymentRefunded(paymentID: id("p"), amountCents: -10, reason: .reconciled),
        ])
        let payment = state.payment(id("p"))
        #expect(payment?.refundedCents == 60)
        #expect(payment?.appliedCents == 0)
        #expect(payment?.status == .refunded)
    }

    @Test func absurdAmountsSaturateInsteadOfTrapping() {
        let state = OrderDecider.fold(OrderState(orderID: id("o")), [
            .orderPlaced(customer: "a", lines: [OrderLine(sku: "S", qty: .max, unitPriceCents: .max)], totalCents: .min),
            .paymentReceived(paymentID: id("p"), amountCents: .max, heldUntilMs: nil),
            .paymentReceived(paymentID: id("q"), amountCents: .max, heldUntilMs: nil),
            .paymentReceived(paymentID: id("r"), amountCents: .min, heldUntilMs: .min),
            .paymentApplied(paymentID: id("r"), amountCents: .min),
            .paymentRefunded(paymentID: id("q"), amountCents: .max, reason: .overpayment),
        ])
        #expect(state.lines[0].lineTotalCents == .max)
        #expect(state.paidCents == .max)
        #expect(state.outstandingCents == 0)
        #expect(state.payment(id("r"))?.appliedCents == 0)
        #expect(state.nextHoldDeadlineMs == nil)
    }

    @Test(arguments: 0..<50)
    func evolveIsTotalOnArbitraryEventSequences(seed: UInt64) {
        var random = SplitMix64(seed: seed &+ 1000)
        var state = OrderState(orderID: id("x"))
        for _ in 0..<60 {
            state = OrderDecider.evolve(state, everyEvent[Int(random.next() % UInt64(everyEvent.count))])
            #expect(state.paidCents >= 0, "seed \(seed)")
            for payment in state.payments {
                #expect(payment.appliedCents >= 0 && payment.refundedCents >= 0, "seed \(seed)")
                #expect(payment.appliedCents + payment.refundedCents <= payment.amountCents, "seed \(seed)")
            }
        }
        #expect(state.version == 60)
        #expect((try? OrderState.fromSnapshot(state.snapshotJSON())) == state, "seed \(seed)")
    }
}
