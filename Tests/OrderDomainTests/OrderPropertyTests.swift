import OrderDomain
import Testing

/// Random command sequences over random seeds: whatever the order of
/// commands, the invariants of money and status hold.
@Suite struct OrderProperties {
    static let statusRank: [OrderStatus?: Int] = [nil: 0, .placed: 1, .paid: 2, .shipped: 3, .cancelled: 3]

    static func randomCommand(_ random: inout SplitMix64) -> OrderCommand {
        switch random.next() % 7 {
        case 0, 1:
            let lines = (0..<Int(1 + random.next() % 3)).map { _ in
                OrderLineRequest(sku: catalog.all[Int(random.next() % 5)].sku, qty: Int(random.next() % 4))
            }
            return .place(customer: random.next() % 2 == 0 ? "alice" : "bob", lines: lines)
        case 2, 3:
            return .pay(paymentID: id("p-\(random.next() % 6)"), amountCents: Cents(random.next() % 30_000))
        case 4:
            return .cancel(reason: nil)
        case 5:
            return .ship(shipmentID: id("s-\(random.next() % 2)"))
        default:
            return .expireHeldPayments
        }
    }

    @Test(arguments: 0..<200)
    func invariantsHoldForRandomCommandSequences(seed: Int) {
        var random = SplitMix64(seed: UInt64(seed))
        var order = Order()
        for step in 0..<40 {
            let before = order.state
            let command = Self.randomCommand(&random)
            order.nowMs += Int64(random.next() % 40_000)
            let result = order.run(command)
            let after = order.state
            let context = "seed \(seed) step \(step) \(command)"

            if case .failure = result { #expect(after == before, "a refusal changes nothing (\(context))") }
            #expect(after.version == Int64(order.events.count), "version counts events (\(context))")
            #expect(after.paidCents <= after.totalCents || !after.exists, "never more kept than the total (\(context))")
            #expect(after.paidCents >= 0)
            for payment in after.payments where payment.status != .held {
                #expect(payment.amountCents == payment.appliedCents + payment.refundedCents, "money adds up (\(context))")
            }
            if after.status == .cancelled { #expect(after.paidCents == 0, "a cancelled order keeps nothing (\(context))") }
            if after.status == .paid || after.status == .shipped { #expect(after.paidCents == after.totalCents, "\(context)") }
            #expect(Self.statusRank[after.status]! >= Self.statusRank[before.status]!, "status only moves forward (\(context))")
            if before.status == .cancelled || before.status == .shipped { #expect(after.status == before.status, "\(context)") }
        }
        let refolded = OrderDecider.fold(OrderState(orderID: order.state.orderID), order.events)
        #expect(refolded == order.state, "folding the events rebuilds the state (seed \(seed))")
        #expect((try? OrderState.fromSnapshot(order.state.snapshotJSON())) == order.state, "seed \(seed)")
    }

    @Test(arguments: 0..<50)
    func evolveIsTotalOnArbitraryEventSequences(seed: Int) {
        var random = SplitMix64(seed: UInt64(seed) &+ 1000)
        var state = OrderState(orderID: id("x"))
        let events = Encoding.everyEvent
        for _ in 0..<60 {
            state = OrderDecider.evolve(state, events[Int(random.next() % UInt64(events.count))])
            #expect(state.paidCents >= 0, "seed \(seed)")
        }
        #expect(state.version == 60)
    }
}
