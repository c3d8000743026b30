import OrderDomain
import Testing

@Suite struct SnapshotTests {
    @Test func snapshotRoundTripsExactly() throws {
        var order = Order()
        _ = order.pay("early", 3)
        _ = order.pay("late", 4)
        order.nowMs += order.holdTimeoutMs / 2
        _ = order.pay("later", 5)
        order.nowMs += order.holdTimeoutMs / 2
        _ = order.run(.expireHeldPayments)
        let withHeld = order.state
        #expect(withHeld.payments.contains { $0.status == .held })
        #expect(try OrderState.fromSnapshot(withHeld.snapshotJSON()) == withHeld)

        _ = order.place([(sku1, 2), (sku2, 1)], customer: trickyText)
        _ = order.pay("p-1", price1)
        _ = order.accept(.cancel(reason: "why \"not\" \\ \u{1}"))
        _ = order.pay("p-2", 9)
        let restored = try OrderState.fromSnapshot(order.state.snapshotJSON())
        #expect(restored == order.state)
        #expect(restored.paidCents == order.state.paidCents)
        #expect(Set(restored.payments.map(\.firstOutcome)) == [.held, .applied, .refunded])
    }

    @Test func shippedOrderSnapshotRoundTrips() throws {
        var order = Order()
        _ = order.place([(sku1, 1)])
        _ = order.pay("p-1", price1 + 1)
        _ = order.accept(.ship(shipmentID: id("s-9")))
        #expect(try OrderState.fromSnapshot(order.state.snapshotJSON()) == order.state)
    }

    @Test func emptyStateRoundTrips() throws {
        let empty = OrderState(orderID: id("e"))
        #expect(try OrderState.fromSnapshot(empty.snapshotJSON()) == empty)
    }

    @Test func snapshotWithoutFirstOutcomeIsStillRead() throws {
        // Checkpoints written before first_outcome was recorded.
        let text = #"{"snapshot_v":1,"order_id":"o","version":2,"lines":[],"total_cents":0,"payments":[{"id":"p","amount_cents":5,"applied_cents":0,"refunded_cents":0,"status":"held","held_until_ms":7},{"id":"q","amount_cents":5,"applied_cents":0,"refunded_cents":5,"status":"refunded"}]}"#
        let state = try OrderState.fromSnapshot(text)
        #expect(state.payments.map(\.firstOutcome) == [.held, .refunded])
        #expect(state.version == 2)
        #expect(state.nextHoldDeadlineMs == 7)
    }

    @Test(arguments: [
        #"{"snapshot_v":99}"#,
        #"{"snapshot_v":1,"order_id":"bad id","version":0,"lines":[],"total_cents":0,"payments":[]}"#,
        #"{"snapshot_v":1,"order_id":"o","version":0,"lines":[],"total_cents":0,"payments":[],"status":"lost"}"#,
        #"{"snapshot_v":1,"order_id":"o","version":0,"lines":[],"total_cents":0,"payments":[],"shipment_id":"a b"}"#,
        #"{"snapshot_v":1,"order_id":"o","version":0,"lines":[],"total_cents":0}"#,
        #"{"snapshot_v":1,"order_id":"o","version":0,"lines":[],"total_cents":0,"payments":[{"id":"p"}]}"#,
        "",
        "{",
    ])
    func badSnapshotsThrow(text: String) {
        #expect(throws: EventDecodingError.self) { try OrderState.fromSnapshot(text) }
    }
}
