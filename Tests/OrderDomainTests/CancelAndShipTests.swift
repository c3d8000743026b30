import OrderDomain
import Testing

@Suite struct CancelAndShipTests {
    @Test func cancelPaidOrderRefundsPayments() {
        var order = Order()
        _ = order.place([(sku1, 2)])
        _ = order.pay("p-1", price1)
        _ = order.pay("p-2", price1 + 5)
        let cancel = order.accept(.cancel(reason: "changed mind"))
        #expect(cancel?.outcome == .created)
        #expect(cancel?.events == [
            .orderCancelled(reason: "changed mind"),
            .paymentRefunded(paymentID: id("p-1"), amountCents: price1, reason: .orderCancelled),
            .paymentRefunded(paymentID: id("p-2"), amountCents: price1, reason: .orderCancelled),
        ])
        #expect(order.state.status == .cancelled)
        #expect(order.state.cancelReason == "changed mind")
        #expect(order.state.paidCents == 0)
        #expect(order.state.refundedCents == 2 * price1 + 5)
        #expect(order.state.payments.allSatisfy { $0.status == .refunded && $0.amountCents == $0.refundedCents })
    }

    @Test func cancelPlacedOrderRefundsPartialPayments() {
        var order = Order()
        _ = order.place([(sku1, 2)])
        _ = order.pay("p-1", 40)
        let cancel = order.accept(.cancel(reason: nil))
        #expect(cancel?.events == [.orderCancelled(reason: nil), .paymentRefunded(paymentID: id("p-1"), amountCents: 40, reason: .orderCancelled)])
        #expect(order.state.cancelReason == nil)
        #expect(order.state.paidCents == 0)
    }

    @Test func cancelUnpaidOrderHasNothingToRefund() {
        var order = Order()
        _ = order.place()
        #expect(order.accept(.cancel(reason: "x"))?.events == [.orderCancelled(reason: "x")])
    }

    @Test func repeatCancelIsReplayed() {
        var order = Order()
        _ = order.place()
        _ = order.accept(.cancel(reason: "a"))
        let again = order.run(.cancel(reason: "another reason"))
        #expect(again.outcome == .replayed)
        #expect(again.events == [])
        #expect(order.state.cancelReason == "a")
    }

    @Test func cancelOrShipMissingOrderIsNotFound() {
        var order = Order()
        #expect(order.run(.cancel(reason: nil)).errorCode == "not_found")
        #expect(order.run(.ship(shipmentID: id("s-1"))).errorCode == "not_found")
        _ = order.pay("p-1", 5)
        #expect(order.run(.cancel(reason: nil)).errorCode == "not_found", "a held payment is not an order")
        #expect(order.run(.ship(shipmentID: id("s-1"))).errorCode == "not_found")
    }

    @Test func cannotCancelShippedOrder() {
        var order = Order()
        _ = order.place([(sku1, 1)])
        _ = order.pay("p-1", price1)
        _ = order.accept(.ship(shipmentID: id("s-1")))
        #expect(order.run(.cancel(reason: nil)).errorCode == "order_shipped")
        #expect(order.state.status == .shipped)
        #expect(order.state.paidCents == price1)
    }

    @Test func overlongCancelReasonIsRejected() {
        var order = Order()
        _ = order.place()
        #expect(order.run(.cancel(reason: String(repeating: "r", count: Limits.reasonBytesMax + 1))).errorCode == "invalid_reason")
        #expect(order.state.status == .placed)
        #expect(order.run(.cancel(reason: String(repeating: "r", count: Limits.reasonBytesMax))).outcome == .created)
    }

    @Test func cannotShipUnpaidOrder() {
        var order = Order()
        _ = order.place([(sku1, 2)])
        _ = order.pay("p-1", price1)
        #expect(order.run(.ship(shipmentID: id("s-1"))).errorCode == "order_not_paid")
        #expect(order.state.status == .placed)
    }

    @Test func cannotShipCancelledOrder() {
        var order = Order()
        _ = order.place([(sku1, 1)])
        _ = order.pay("p-1", price1)
        _ = order.accept(.cancel(reason: nil))
        #expect(order.run(.ship(shipmentID: id("s-1"))).errorCode == "order_cancelled")
    }

    @Test func shipPaidOrderRecordsShipment() {
        var order = Order()
        _ = order.place([(sku1, 1)])
        _ = order.pay("p-1", price1)
        let shipped = order.run(.ship(shipmentID: id("s-1")))
        #expect(shipped.outcome == .created)
        #expect(shipped.events == [.orderShipped(shipmentID: id("s-1"))])
        #expect(order.state.status == .shipped)
        #expect(order.state.shipmentID == id("s-1"))
    }

    @Test func shipIsIdempotent() {
        var order = Order()
        _ = order.place([(sku1, 1)])
        _ = order.pay("p-1", price1)
        _ = order.run(.ship(shipmentID: id("s-1")))
        let again = order.run(.ship(shipmentID: id("s-1")))
        #expect(again.outcome == .replayed)
        #expect(again.events == [])
        #expect(order.state.version == 4)
    }

    @Test func shipUnderAnotherShipmentIDConflicts() {
        var order = Order()
        _ = order.place([(sku1, 1)])
        _ = order.pay("p-1", price1)
        _ = order.run(.ship(shipmentID: id("s-1")))
        #expect(order.run(.ship(shipmentID: id("s-2"))).errorCode == "shipment_id_reused")
        #expect(order.state.shipmentID == id("s-1"))
    }
}
