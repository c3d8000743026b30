import OrderDomain
import Testing

@Suite struct PlacingOrders {
    @Test func placeOrderComputesTheTotalFromTheCatalog() {
        var order = Order()
        let result = order.place([(sku1, 2), (sku2, 3)])
        #expect(result.outcome == .created)
        #expect(order.state.status == .placed)
        #expect(order.state.totalCents == 2 * price1 + 3 * price2)
        #expect(order.state.lines.map(\.unitPriceCents) == [price1, price2])
        #expect(order.state.version == 1)
    }

    @Test func anExactRepeatIsReplayedWithoutEvents() {
        var order = Order()
        _ = order.place([(sku1, 2)])
        let again = order.place([(sku1, 2)])
        #expect(again.outcome == .replayed)
        #expect(again.events == [])
        #expect(order.state.version == 1)
    }

    @Test(arguments: [
        ([(sku1, 3)], "alice"),
        ([(sku2, 2)], "alice"),
        ([(sku1, 2)], "bob"),
        ([(sku1, 2), (sku2, 1)], "alice"),
    ] as [([(String, Int)], String)])
    func aRepeatWithAnotherBodyConflicts(lines: [(String, Int)], customer: String) {
        var order = Order()
        _ = order.place([(sku1, 2)])
        #expect(order.place(lines, customer: customer).errorCode == "order_id_reused")
    }

    @Test(arguments: [
        ([(sku1, 0)], "alice", "invalid_qty"),
        ([(sku1, -1)], "alice", "invalid_qty"),
        ([(sku1, Limits.qtyMax + 1)], "alice", "invalid_qty"),
        ([("NOPE", 1)], "alice", "unknown_sku"),
        ([], "alice", "no_lines"),
        ([(sku1, 1)], "   ", "invalid_customer"),
        ([(sku1, 1)], "", "invalid_customer"),
        ([(sku1, 1)], String(repeating: "c", count: Limits.customerBytesMax + 1), "invalid_customer"),
        (Array(repeating: (sku1, 1), count: Limits.linesMax + 1), "alice", "too_many_lines"),
    ] as [([(String, Int)], String, String)])
    func invalidOrdersAreRefusedWithoutEvents(lines: [(String, Int)], customer: String, code: String) {
        var order = Order()
        #expect(order.place(lines, customer: customer).errorCode == code)
        #expect(order.state.version == 0)
        #expect(!order.state.exists)
    }
}

@Suite struct Payments {
    @Test func paymentsReachingTheTotalMarkTheOrderPaid() {
        var order = Order()
        _ = order.place([(sku1, 2)])
        let first = order.pay("p-1", price1)
        #expect(first.outcome == .created)
        #expect(order.state.status == .placed)
        #expect(order.state.paidCents == price1)
        let second = order.pay("p-2", price1)
        #expect(second.events?.last == .orderPaid(paidCents: 2 * price1))
        #expect(order.state.status == .paid)
        #expect(order.state.paidCents == 2 * price1)
    }

    @Test func overpaymentIsRefundedByAnEvent() {
        var order = Order()
        _ = order.place([(sku1, 1)])
        let result = order.pay("p-1", price1 + 250)
        #expect(result.events == [
            .paymentReceived(paymentID: id("p-1"), amountCents: price1 + 250, heldUntilMs: nil),
            .paymentRefunded(paymentID: id("p-1"), amountCents: 250, reason: .overpayment),
            .orderPaid(paidCents: price1),
        ])
        #expect(order.state.paidCents == price1)
        #expect(order.state.payment(id("p-1"))?.status == .partiallyRefunded)
        // Paying a paid order refunds the whole payment.
        _ = order.pay("p-2", 10)
        #expect(order.state.payment(id("p-2"))?.status == .refunded)
        #expect(order.state.paidCents == price1)
        #expect(order.state.status == .paid)
    }

    @Test func aRepeatedPaymentIsReplayedAndAnotherAmountConflicts() {
        var order = Order()
        _ = order.place([(sku1, 5)])
        _ = order.pay("p-1", 100)
        #expect(order.pay("p-1", 100).outcome == .replayed)
        #expect(order.pay("p-1", 101).errorCode == "payment_id_reused")
        #expect(order.state.paidCents == 100)
    }

    @Test(arguments: [0, -1, Limits.amountCentsMax + 1] as [Cents])
    func invalidAmountsAreRefused(amount: Cents) {
        var order = Order()
        _ = order.place()
        #expect(order.pay("p-1", amount).errorCode == "invalid_amount")
        #expect(order.state.payments.isEmpty)
    }

    @Test func paymentBeforeOrderIsHeldThenAppliedWhenTheOrderArrives() {
        var order = Order()
        let held = order.pay("p-1", price1)
        #expect(held.outcome == .held)
        #expect(held.events == [.paymentReceived(paymentID: id("p-1"), amountCents: price1, heldUntilMs: order.nowMs + order.holdTimeoutMs)])
        #expect(!order.state.exists)
        #expect(order.state.nextHoldDeadlineMs == order.nowMs + order.holdTimeoutMs)
        #expect(order.pay("p-1", price1).outcome == .replayed)

        let placed = order.place([(sku1, 1)])
        #expect(placed.events == [
            .orderPlaced(customer: "alice", lines: [OrderLine(sku: sku1, qty: 1, unitPriceCents: price1)], totalCents: price1),
            .paymentApplied(paymentID: id("p-1"), amountCents: price1),
            .orderPaid(paidCents: price1),
        ])
        #expect(order.state.status == .paid)
        #expect(order.state.nextHoldDeadlineMs == nil)
    }

    @Test func heldPaymentsBeyondTheTotalAreRefundedWhenTheOrderArrives() {
        var order = Order()
        _ = order.pay("p-1", price1 - 1)
        _ = order.pay("p-2", 5)
        _ = order.pay("p-3", 7)
        _ = order.place([(sku1, 1)])
        #expect(order.state.status == .paid)
        #expect(order.state.paidCents == price1)
        #expect(order.state.payment(id("p-2"))?.appliedCents == 1)
        #expect(order.state.payment(id("p-2"))?.refundedCents == 4)
        #expect(order.state.payment(id("p-3"))?.status == .refunded)
        #expect(order.state.payment(id("p-3"))?.refundedCents == 7)
    }

    @Test func aHeldPaymentIsRefundedWhenTheOrderNeverArrives() {
        var order = Order()
        _ = order.pay("p-1", 500)
        order.nowMs += order.holdTimeoutMs - 1
        #expect(order.run(.expireHeldPayments).events == [], "not due yet")
        #expect(order.state.payment(id("p-1"))?.status == .held)
        order.nowMs += 1
        let expired = order.run(.expireHeldPayments)
        #expect(expired.events == [.paymentRefunded(paymentID: id("p-1"), amountCents: 500, reason: .orderNeverArrived)])
        #expect(order.state.payment(id("p-1"))?.status == .refunded)
        #expect(order.state.nextHoldDeadlineMs == nil)
        // A late order is placed normally; the refunded payment is not applied.
        _ = order.place([(sku1, 1)])
        #expect(order.state.status == .placed)
        #expect(order.state.paidCents == 0)
    }

    @Test func timersOnAPlacedOrderDoNothing() {
        var order = Order()
        _ = order.place()
        order.nowMs += 10 * order.holdTimeoutMs
        #expect(order.run(.expireHeldPayments).events == [])
    }

    @Test func aPaymentOnACancelledOrderIsRefunded() {
        var order = Order()
        _ = order.place()
        _ = order.accept(.cancel(reason: nil))
        let result = order.pay("p-1", 300)
        #expect(result.outcome == .created)
        #expect(result.events?.last == .paymentRefunded(paymentID: id("p-1"), amountCents: 300, reason: .orderCancelled))
        #expect(order.state.payment(id("p-1"))?.status == .refunded)
        #expect(order.state.paidCents == 0)
    }
}

@Suite struct CancellingAndShipping {
    @Test func cancellingAPaidOrderRefundsItsPayments() {
        var order = Order()
        _ = order.place([(sku1, 1)])
        _ = order.pay("p-1", price1)
        let cancel = order.accept(.cancel(reason: "changed mind"))
        #expect(cancel?.events == [
            .orderCancelled(reason: "changed mind"),
            .paymentRefunded(paymentID: id("p-1"), amountCents: price1, reason: .orderCancelled),
        ])
        #expect(order.state.status == .cancelled)
        #expect(order.state.cancelReason == "changed mind")
        #expect(order.state.paidCents == 0)
        #expect(order.state.refundedCents == price1)
        #expect(order.run(.cancel(reason: nil)).outcome == .replayed)
    }

    @Test func cancelAndShipNeedAnOrder() {
        var order = Order()
        #expect(order.run(.cancel(reason: nil)).errorCode == "not_found")
        #expect(order.run(.ship(shipmentID: id("s-1"))).errorCode == "not_found")
        _ = order.pay("p-1", 5)
        #expect(order.run(.cancel(reason: nil)).errorCode == "not_found", "a held payment is not an order")
    }

    @Test func aShippedOrderCannotBeCancelled() {
        var order = Order()
        _ = order.place([(sku1, 1)])
        _ = order.pay("p-1", price1)
        _ = order.accept(.ship(shipmentID: id("s-1")))
        #expect(order.state.status == .shipped)
        #expect(order.run(.cancel(reason: nil)).errorCode == "order_shipped")
    }

    @Test func anUnpaidOrCancelledOrderCannotShip() {
        var order = Order()
        _ = order.place([(sku1, 1)])
        #expect(order.run(.ship(shipmentID: id("s-1"))).errorCode == "order_not_paid")
        _ = order.accept(.cancel(reason: nil))
        #expect(order.run(.ship(shipmentID: id("s-1"))).errorCode == "order_cancelled")
    }

    @Test func shippingIsIdempotentByShipmentID() {
        var order = Order()
        _ = order.place([(sku1, 1)])
        _ = order.pay("p-1", price1)
        #expect(order.run(.ship(shipmentID: id("s-1"))).outcome == .created)
        #expect(order.run(.ship(shipmentID: id("s-1"))).outcome == .replayed)
        #expect(order.run(.ship(shipmentID: id("s-2"))).errorCode == "shipment_id_reused")
        #expect(order.state.version == 4)
    }

    @Test func anOverlongCancelReasonIsRefused() {
        var order = Order()
        _ = order.place()
        #expect(order.run(.cancel(reason: String(repeating: "r", count: Limits.reasonBytesMax + 1))).errorCode == "invalid_reason")
        #expect(order.state.status == .placed)
    }
}
