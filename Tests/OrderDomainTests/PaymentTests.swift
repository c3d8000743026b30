import OrderDomain
import Testing

@Suite struct PaymentTests {
    @Test func paymentsReachingTotalMarkOrderPaid() {
        var order = Order()
        _ = order.place([(sku1, 2)])
        let first = order.pay("p-1", price1)
        #expect(first.outcome == .created)
        #expect(first.events == [.paymentReceived(paymentID: id("p-1"), amountCents: price1, heldUntilMs: nil)])
        #expect(order.state.status == .placed)
        #expect(order.state.paidCents == price1)
        let second = order.pay("p-2", price1)
        #expect(second.events == [
            .paymentReceived(paymentID: id("p-2"), amountCents: price1, heldUntilMs: nil),
            .orderPaid(paidCents: 2 * price1),
        ])
        #expect(order.state.status == .paid)
        #expect(order.state.paidCents == 2 * price1)
        #expect(order.state.payments.map(\.status) == [.applied, .applied])
    }

    @Test func overpaymentIsRefunded() {
        var order = Order()
        _ = order.place([(sku1, 1)])
        let result = order.pay("p-1", price1 + 250)
        #expect(result.events == [
            .paymentReceived(paymentID: id("p-1"), amountCents: price1 + 250, heldUntilMs: nil),
            .paymentRefunded(paymentID: id("p-1"), amountCents: 250, reason: .overpayment),
            .orderPaid(paidCents: price1),
        ])
        let payment = order.state.payment(id("p-1"))
        #expect(payment?.appliedCents == price1)
        #expect(payment?.refundedCents == 250)
        #expect(payment?.status == .partiallyRefunded)
        #expect(payment?.firstOutcome == .applied)
        #expect(order.state.paidCents == price1)
    }

    @Test func paymentOnPaidOrderIsRefundedWhole() {
        var order = Order()
        _ = order.place([(sku1, 1)])
        _ = order.pay("p-1", price1)
        let late = order.pay("p-2", 10)
        #expect(late.outcome == .created)
        #expect(late.events == [
            .paymentReceived(paymentID: id("p-2"), amountCents: 10, heldUntilMs: nil),
            .paymentRefunded(paymentID: id("p-2"), amountCents: 10, reason: .overpayment),
        ])
        #expect(order.state.payment(id("p-2"))?.status == .refunded)
        #expect(order.state.payment(id("p-2"))?.firstOutcome == .refunded)
        #expect(order.state.paidCents == price1)
        #expect(order.state.status == .paid)
    }

    @Test func paymentOnShippedOrderIsRefundedWhole() {
        var order = Order()
        _ = order.place([(sku1, 1)])
        _ = order.pay("p-1", price1)
        _ = order.accept(.ship(shipmentID: id("s-1")))
        #expect(order.pay("p-2", 10).events?.last == .paymentRefunded(paymentID: id("p-2"), amountCents: 10, reason: .overpayment))
        #expect(order.state.status == .shipped)
        #expect(order.state.paidCents == price1)
    }

    @Test func repeatPaymentIsReplayedAndOtherAmountConflicts() {
        var order = Order()
        _ = order.place([(sku1, 5)])
        _ = order.pay("p-1", 100)
        let again = order.pay("p-1", 100)
        #expect(again.outcome == .replayed)
        #expect(again.events == [])
        #expect(order.pay("p-1", 101).errorCode == "payment_id_reused")
        #expect(order.state.paidCents == 100)
        #expect(order.state.version == 2)
    }

    @Test(arguments: [0, -1, Limits.amountCentsMax + 1, .min] as [Cents])
    func invalidAmountIsRejected(amount: Cents) {
        var order = Order()
        _ = order.place()
        #expect(order.pay("p-1", amount).errorCode == "invalid_amount")
        #expect(order.state.payments.isEmpty)
        var early = Order()
        #expect(early.pay("p-1", amount).errorCode == "invalid_amount", "also before the order")
    }

    @Test func paymentOnCancelledOrderIsRefunded() {
        var order = Order()
        _ = order.place()
        _ = order.accept(.cancel(reason: nil))
        let result = order.pay("p-1", 300)
        #expect(result.outcome == .created)
        #expect(result.events == [
            .paymentReceived(paymentID: id("p-1"), amountCents: 300, heldUntilMs: nil),
            .paymentRefunded(paymentID: id("p-1"), amountCents: 300, reason: .orderCancelled),
        ])
        #expect(order.state.payment(id("p-1"))?.status == .refunded)
        #expect(order.state.payment(id("p-1"))?.firstOutcome == .refunded)
        #expect(order.state.paidCents == 0)
        #expect(order.pay("p-1", 300).outcome == .replayed)
    }
}

@Suite struct HeldPaymentTests {
    @Test func paymentBeforeOrderIsHeldAndAppliedWhenOrderArrives() {
        var order = Order()
        let held = order.pay("p-1", price1)
        #expect(held.outcome == .held)
        #expect(held.events == [.paymentReceived(paymentID: id("p-1"), amountCents: price1, heldUntilMs: order.nowMs + order.holdTimeoutMs)])
        #expect(!order.state.exists)
        #expect(order.state.paidCents == 0)
        #expect(order.state.payment(id("p-1"))?.status == .held)
        #expect(order.state.payment(id("p-1"))?.firstOutcome == .held)
        #expect(order.state.nextHoldDeadlineMs == order.nowMs + order.holdTimeoutMs)
        #expect(order.pay("p-1", price1).outcome == .replayed)

        let placed = order.place([(sku1, 1)])
        #expect(placed.outcome == .created)
        #expect(placed.events == [
            .orderPlaced(customer: "alice", lines: [OrderLine(sku: sku1, qty: 1, unitPriceCents: price1)], totalCents: price1),
            .paymentApplied(paymentID: id("p-1"), amountCents: price1),
            .orderPaid(paidCents: price1),
        ])
        #expect(order.state.status == .paid)
        #expect(order.state.payment(id("p-1"))?.status == .applied)
        #expect(order.state.payment(id("p-1"))?.heldUntilMs == nil)
        #expect(order.state.payment(id("p-1"))?.firstOutcome == .held, "the first answer stays what it was")
        #expect(order.state.nextHoldDeadlineMs == nil)
    }

    @Test func heldPaymentsBeyondTotalAreRefundedWhenOrderArrives() {
        var order = Order()
        _ = order.pay("p-1", price1 - 1)
        _ = order.pay("p-2", 5)
        _ = order.pay("p-3", 7)
        let placed = order.place([(sku1, 1)])
        #expect(placed.events?.dropFirst() == [
            .paymentApplied(paymentID: id("p-1"), amountCents: price1 - 1),
            .paymentApplied(paymentID: id("p-2"), amountCents: 1),
            .paymentRefunded(paymentID: id("p-2"), amountCents: 4, reason: .overpayment),
            .paymentRefunded(paymentID: id("p-3"), amountCents: 7, reason: .overpayment),
            .orderPaid(paidCents: price1),
        ])
        #expect(order.state.status == .paid)
        #expect(order.state.paidCents == price1)
        let second = order.state.payment(id("p-2"))
        #expect(second?.appliedCents == 1)
        #expect(second?.refundedCents == 4)
        #expect(second?.status == .partiallyRefunded)
        let third = order.state.payment(id("p-3"))
        #expect(third?.status == .refunded)
        #expect(third?.refundedCents == 7)
        #expect(third?.appliedCents == 0)
    }

    @Test func heldPaymentsShortOfTotalLeaveOrderPlaced() {
        var order = Order()
        _ = order.pay("p-1", 10)
        _ = order.place([(sku1, 1)])
        #expect(order.state.status == .placed)
        #expect(order.state.paidCents == 10)
        _ = order.pay("p-2", price1 - 10)
        #expect(order.state.status == .paid)
    }

    @Test func heldPaymentIsRefundedWhenOrderNeverArrives() {
        var order = Order()
        _ = order.pay("p-1", 500)
        order.nowMs += order.holdTimeoutMs
        let expired = order.run(.expireHeldPayments)
        #expect(expired.outcome == .created)
        #expect(expired.events == [.paymentRefunded(paymentID: id("p-1"), amountCents: 500, reason: .orderNeverArrived)])
        let payment = order.state.payment(id("p-1"))
        #expect(payment?.status == .refunded)
        #expect(payment?.refundedCents == 500)
        #expect(payment?.heldUntilMs == nil)
        #expect(order.state.nextHoldDeadlineMs == nil)
        #expect(order.run(.expireHeldPayments).outcome == .replayed, "nothing left to expire")
        #expect(order.pay("p-1", 500).outcome == .replayed, "a repeat still answers from the record")
    }

    @Test func heldPaymentNotExpiredBeforeDeadline() {
        var order = Order()
        _ = order.pay("p-1", 500)
        order.nowMs += order.holdTimeoutMs - 1
        let early = order.run(.expireHeldPayments)
        #expect(early.outcome == .replayed)
        #expect(early.events == [])
        #expect(order.state.payment(id("p-1"))?.status == .held)
    }

    @Test func onlyDueHeldPaymentsExpire() {
        var order = Order()
        _ = order.pay("p-1", 100)
        order.nowMs += 1_000
        _ = order.pay("p-2", 200)
        order.nowMs += order.holdTimeoutMs - 1_000
        #expect(order.run(.expireHeldPayments).events == [.paymentRefunded(paymentID: id("p-1"), amountCents: 100, reason: .orderNeverArrived)])
        #expect(order.state.nextHoldDeadlineMs == order.nowMs + 1_000)
        order.nowMs += 1_000
        #expect(order.run(.expireHeldPayments).events == [.paymentRefunded(paymentID: id("p-2"), amountCents: 200, reason: .orderNeverArrived)])
    }

    @Test func expiredPaymentIsNotAppliedToALateOrder() {
        var order = Order()
        _ = order.pay("p-1", price1)
        order.nowMs += order.holdTimeoutMs
        _ = order.run(.expireHeldPayments)
        let placed = order.place([(sku1, 1)])
        #expect(placed.events?.count == 1, "only orderPlaced")
        #expect(order.state.status == .placed)
        #expect(order.state.paidCents == 0)
        #expect(order.state.payment(id("p-1"))?.status == .refunded)
    }

    @Test func timerOnPlacedOrderDoesNothing() {
        var order = Order()
        _ = order.place()
        _ = order.pay("p-1", 1)
        order.nowMs += 10 * order.holdTimeoutMs
        let result = order.run(.expireHeldPayments)
        #expect(result.outcome == .replayed)
        #expect(result.events == [])
    }

    @Test func timerSettlesAPaymentStillHeldAfterTheOrderExists() {
        // Only a log merged from two nodes can hold this: the order placed on
        // one, the payment held on the other. The timer must make progress.
        var state = OrderState(orderID: id("o-1"))
        let line = OrderLine(sku: sku1, qty: 1, unitPriceCents: 100)
        state = OrderDecider.fold(state, [
            .orderPlaced(customer: "alice", lines: [line], totalCents: 100),
            .paymentReceived(paymentID: id("p-1"), amountCents: 150, heldUntilMs: 5),
        ])
        #expect(state.nextHoldDeadlineMs == 5)
        let decision = try? OrderDecider.decide(.expireHeldPayments, state: state, context: DecideContext(nowMs: 5, catalog: catalog)).get()
        #expect(decision?.events == [
            .paymentApplied(paymentID: id("p-1"), amountCents: 100),
            .paymentRefunded(paymentID: id("p-1"), amountCents: 50, reason: .overpayment),
            .orderPaid(paidCents: 100),
        ])
        state = OrderDecider.fold(state, decision?.events ?? [])
        #expect(state.status == .paid)
        #expect(state.nextHoldDeadlineMs == nil)

        var cancelled = OrderDecider.fold(OrderState(orderID: id("o-2")), [
            .orderPlaced(customer: "alice", lines: [line], totalCents: 100),
            .orderCancelled(reason: nil),
            .paymentReceived(paymentID: id("p-1"), amountCents: 150, heldUntilMs: 5),
        ])
        let refund = try? OrderDecider.decide(.expireHeldPayments, state: cancelled, context: DecideContext(nowMs: 0, catalog: catalog)).get()
        #expect(refund?.events == [.paymentRefunded(paymentID: id("p-1"), amountCents: 150, reason: .orderCancelled)])
        cancelled = OrderDecider.fold(cancelled, refund?.events ?? [])
        #expect(cancelled.paidCents == 0)
    }

    @Test func holdDeadlineSaturatesInsteadOfOverflowing() {
        var order = Order()
        order.nowMs = .max - 1
        #expect(order.pay("p-1", 5).events == [.paymentReceived(paymentID: id("p-1"), amountCents: 5, heldUntilMs: .max)])
    }
}
