import OrderDomain
import Testing

/// Random command sequences over random seeds: whatever the order of
/// commands and the passing of time, the invariants of money and status
/// hold. A failure names its seed; rerun that seed alone to debug.
@Suite struct OrderPropertyTests {
    static let statusRank: [OrderStatus?: Int] = [nil: 0, .placed: 1, .paid: 2, .shipped: 3, .cancelled: 3]

    static func randomCommand(_ random: inout SplitMix64, state: OrderState) -> OrderCommand {
        switch random.next() % 8 {
        case 0, 1:
            // Few SKUs and quantities, so repeats of the same body happen; qty 0 is refused.
            let lines = (0..<Int(1 + random.next() % 3)).map { _ in
                OrderLineRequest(sku: catalog.all[Int(random.next() % 5)].sku, qty: Int(random.next() % 4))
            }
            return .place(customer: random.next() % 2 == 0 ? "alice" : "bob", lines: lines)
        case 2, 3, 4:
            // Amounts that match what is outstanding, part of it, or anything (including invalid 0).
            let amount: Cents =
                switch random.next() % 3 {
                case 0: state.outstandingCents
                case 1: state.outstandingCents / 2
                default: Cents(random.next() % 30_000)
                }
            return .pay(paymentID: id("p-\(random.next() % 8)"), amountCents: amount)
        case 5:
            return .cancel(reason: random.next() % 2 == 0 ? nil : "r\(random.next() % 3)")
        case 6:
            return .ship(shipmentID: id("s-\(random.next() % 2)"))
        default:
            return .expireHeldPayments
        }
    }

    @Test(arguments: 0..<300)
    func randomCommandSequencesKeepInvariants(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        var order = Order()
        order.holdTimeoutMs = Int64(1 + random.next() % 100_000)
        for step in 0..<50 {
            let before = order.state
            let command = Self.randomCommand(&random, state: before)
            order.nowMs += Int64(random.next() % 40_000)
            let result = order.run(command)
            let after = order.state
            let context = "seed \(seed) step \(step) \(command)"

            switch result {
            case .failure:
                #expect(after == before, "a refusal changes nothing (\(context))")
            case .success(let decision):
                #expect((decision.outcome == .replayed) == decision.events.isEmpty, "replayed iff nothing appended (\(context))")
                #expect((decision.outcome == .held) == (before.status == nil && decision.events.count == 1 && command.isPay), "\(context)")
                for event in decision.events {
                    #expect(try OrderEvent.decode(typeName: event.typeName, payload: event.payloadJSON()) == event, "\(context)")
                }
            }
            #expect(after.version == Int64(order.events.count), "version counts events (\(context))")
            #expect(after.paidCents >= 0, "\(context)")
            if after.exists { #expect(after.paidCents <= after.totalCents, "never more kept than the total (\(context))") }
            for payment in after.payments {
                if payment.status == .held {
                    #expect(!after.exists, "no payment is held once the order exists (\(context))")
                    #expect(payment.appliedCents == 0 && payment.refundedCents == 0 && payment.heldUntilMs != nil, "\(context)")
                } else {
                    #expect(payment.amountCents == payment.appliedCents + payment.refundedCents, "money adds up (\(context))")
                    #expect(payment.heldUntilMs == nil, "\(context)")
                }
                if let old = before.payment(payment.id) { #expect(old.firstOutcome == payment.firstOutcome, "\(context)") }
            }
            if after.status == .cancelled { #expect(after.paidCents == 0, "a cancelled order keeps nothing (\(context))") }
            if after.status == .paid || after.status == .shipped { #expect(after.paidCents == after.totalCents, "\(context)") }
            if after.status == .placed { #expect(after.paidCents < after.totalCents, "a fully paid order is marked paid (\(context))") }
            #expect(Self.statusRank[after.status]! >= Self.statusRank[before.status]!, "status only moves forward (\(context))")
            if before.status == .cancelled || before.status == .shipped { #expect(after.status == before.status, "\(context)") }
        }
        let refolded = OrderDecider.fold(OrderState(orderID: order.state.orderID), order.events)
        #expect(refolded == order.state, "folding the events rebuilds the state (seed \(seed))")
        #expect(try OrderState.fromSnapshot(order.state.snapshotJSON()) == order.state, "snapshot round trip (seed \(seed))")
    }
}

extension OrderCommand {
    var isPay: Bool {
        if case .pay = self { return true }
        return false
    }
}
