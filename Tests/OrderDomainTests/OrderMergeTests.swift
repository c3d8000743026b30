import OrderDomain
import Testing

/// Two sides of a partition each lead the same order from a common prefix;
/// when they heal, every node folds the union of both streams. Whatever the
/// arrival order of the copies, the merge gives one state, and the leader's
/// repair (`reconcile`) restores the invariants a single leader keeps.
@Suite struct OrderMergeTests {
    /// A side's stream, as its log numbers it.
    struct Side {
        var order: Order
        var stored: [StreamEvent] = []
        let name: String

        mutating func run(_ random: inout SplitMix64, steps: Int) {
            for _ in 0..<steps {
                let command = OrderPropertyTests.randomCommand(&random, state: order.state)
                order.nowMs += Int64(random.next() % 40_000)
                let before = order.events.count
                order.run(command)
                for event in order.events[before...] {
                    stored.append(StreamEvent(version: Int64(stored.count + 1) + baseVersion, eventID: "\(name)-\(stored.count)", event: event))
                }
            }
        }

        var baseVersion: Int64 = 0
        var shipments: [ClientID] {
            order.events.compactMap { if case .orderShipped(let id) = $0 { id } else { nil } }
        }
    }

    static func diverge(seed: UInt64) -> (prefix: [StreamEvent], a: Side, b: Side) {
        var random = SplitMix64(seed: seed)
        var common = Side(order: Order(), name: "c")
        common.order.holdTimeoutMs = Int64(1 + random.next() % 100_000)
        common.run(&random, steps: Int(random.next() % 6))
        // Event ids of the two sides sort either way round.
        let names = random.next() % 2 == 0 ? ("n1", "n2") : ("n2", "n1")
        var a = Side(order: common.order, name: names.0, baseVersion: Int64(common.stored.count))
        var b = Side(order: common.order, name: names.1, baseVersion: Int64(common.stored.count))
        a.run(&random, steps: Int(random.next() % 12))
        b.run(&random, steps: Int(random.next() % 12))
        return (common.stored, a, b)
    }

    @Test(arguments: 0..<500)
    func divergentStreamsMergeToOneStateWhateverTheArrivalOrder(seed: UInt64) throws {
        let (prefix, a, b) = Self.diverge(seed: seed)
        let empty = OrderState(orderID: id("o-1"))
        var random = SplitMix64(seed: seed ^ 0x5eed)
        // Node 1 had side A and receives B's copies; node 2 the other way
        // round, with some copies delivered twice; node 3 starts from a
        // checkpoint of the common prefix and gets everything shuffled.
        let onNode1 = OrderMerge.fold(empty, prefix + a.stored + b.stored)
        let duplicated = prefix + b.stored + a.stored + a.stored.filter { _ in random.next() % 3 == 0 }
        let onNode2 = OrderMerge.fold(empty, duplicated)
        let checkpoint = OrderMerge.fold(empty, prefix)
        let onNode3 = OrderMerge.fold(try OrderState.fromSnapshot(checkpoint.snapshotJSON()), (a.stored + b.stored).shuffled(using: &random))
        let context = "seed \(seed)"
        #expect(onNode1 == onNode2, "\(context)")
        #expect(onNode1 == onNode3, "\(context)")

        let repair = OrderMerge.reconcile(onNode1)
        #expect(OrderMerge.reconcile(onNode2) == repair, "every node would repair alike (\(context))")
        let merged = OrderDecider.fold(onNode1, repair)
        #expect(OrderMerge.reconcile(merged) == [], "a repaired order needs no more repair (\(context))")
        #expect(merged.version == onNode1.version + Int64(repair.count), "\(context)")

        // Payments add up: every payment either side took is there, once.
        let received = Set((a.order.state.payments + b.order.state.payments).map(\.id))
        #expect(Set(merged.payments.map(\.id)) == received, "\(context)")
        #expect(merged.payments.count == received.count, "\(context)")
        #expect(merged.exists == (a.order.state.exists || b.order.state.exists), "\(context)")

        let conflictCodes = Set(merged.conflicts.map(\.code))
        #expect(merged.conflicts.allSatisfy { $0.recorded }, "every conflict is in the stream (\(context))")
        for payment in merged.payments {
            #expect(payment.appliedCents >= 0 && payment.refundedCents >= 0, "\(context)")
            if payment.status == .held {
                #expect(!merged.exists, "no payment is held once the order exists (\(context))")
            } else {
                #expect(payment.amountCents == payment.appliedCents + payment.refundedCents, "money adds up for \(payment.id) (\(context))")
            }
        }
        switch merged.status {
        case .cancelled?:
            #expect(merged.paidCents == 0, "a cancelled order keeps nothing (\(context))")
        case .placed?:
            #expect(merged.paidCents < merged.totalCents, "a fully paid order is marked paid (\(context))")
        case .paid?, .shipped?:
            // Less only when one side sent back what the other kept: then
            // the order says so.
            #expect(merged.paidCents <= merged.totalCents, "\(context)")
            #expect(merged.paidCents == merged.totalCents || conflictCodes.contains("underpaid"), "\(context)")
        case nil:
            #expect(merged.paidCents == 0, "\(context)")
        }

        // An order ships once: a shipment on either side stands, and two
        // different shipments are a recorded conflict.
        let shipments = Set(a.shipments + b.shipments)
        if !shipments.isEmpty {
            #expect(merged.status == .shipped, "\(context)")
            #expect(merged.shipmentID.map(shipments.contains) == true, "\(context)")
        }
        #expect((shipments.count > 1) == conflictCodes.contains("shipped_twice"), "\(context)")

        // The repaired state survives a checkpoint and a refold of its events.
        #expect(try OrderState.fromSnapshot(merged.snapshotJSON()) == merged, "\(context)")
        let next = merged.version
        let repaired = (prefix + a.stored + b.stored) + repair.enumerated().map {
            StreamEvent(version: next - Int64(repair.count) + Int64($0.offset) + 1, eventID: "r-\($0.offset)", event: $0.element)
        }
        #expect(OrderMerge.fold(empty, repaired.shuffled(using: &random)) == merged, "\(context)")
    }

    @Test(arguments: 0..<200)
    func aLinearStreamNeedsNoRepair(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var side = Side(order: Order(), name: "n1")
        for _ in 0..<30 {
            side.run(&random, steps: 1)
            #expect(OrderMerge.reconcile(side.order.state) == [], "seed \(seed) after \(side.order.events.count) events")
            #expect(side.order.state.conflicts.isEmpty, "seed \(seed)")
        }
        #expect(OrderMerge.fold(OrderState(orderID: id("o-1")), side.stored) == side.order.state, "seed \(seed)")
    }

    // MARK: The rules, one by one

    let line = OrderLine(sku: "S", qty: 1, unitPriceCents: 100)

    func merge(_ events: [OrderEvent]) -> OrderState {
        let state = OrderDecider.fold(OrderState(orderID: id("o")), events)
        return OrderDecider.fold(state, OrderMerge.reconcile(state))
    }

    /// Two nodes that both led the order for a moment after a heal repair
    /// the same merged state: each writes the same reconciled refund at the
    /// same version. That is one repair, refunded once; a later repair (a
    /// higher version) adds up as before.
    @Test func oneRepairWrittenByTwoLeadersRefundsOnce() {
        let stream = [
            StreamEvent(version: 1, eventID: "api-1-a-1", event: .orderPlaced(customer: "a", lines: [line], totalCents: 100)),
            StreamEvent(version: 2, eventID: "api-1-a-2", event: .paymentReceived(paymentID: id("p-a"), amountCents: 60, heldUntilMs: nil)),
            StreamEvent(version: 2, eventID: "api-2-b-2", event: .paymentReceived(paymentID: id("p-b"), amountCents: 60, heldUntilMs: nil)),
        ]
        let merged = OrderMerge.fold(OrderState(orderID: id("o")), stream)
        let repair = OrderMerge.reconcile(merged)
        #expect(repair.contains { if case .paymentRefunded(_, 20, .reconciled) = $0 { true } else { false } }, "\(repair)")
        func written(by origin: String) -> [StreamEvent] {
            repair.enumerated().map { StreamEvent(version: 3 + Int64($0.offset), eventID: "\(origin)-\(3 + $0.offset)", event: $0.element) }
        }
        let twice = OrderMerge.fold(OrderState(orderID: id("o")), stream + written(by: "api-1-a") + written(by: "api-2-b"))
        #expect(twice.payments.reduce(0) { $0 + $1.refundedCents } == 20, "\(twice.payments)")
        #expect(twice.paidCents == 100)
        #expect(twice.status == .paid)
        #expect(OrderMerge.reconcile(twice).isEmpty, "nothing left to repair")
        // A reconciled refund at another version is another repair.
        let refund = repair.first { if case .paymentRefunded = $0 { true } else { false } }!
        let later = stream + written(by: "api-1-a") + [StreamEvent(version: 9, eventID: "api-1-a-9", event: refund)]
        #expect(OrderMerge.fold(OrderState(orderID: id("o")), later).payments.reduce(0) { $0 + $1.refundedCents } == 40)
    }

    @Test func paymentsTakenOnBothSidesAddUpAndTheExcessGoesBack() {
        let merged = merge([
            .orderPlaced(customer: "a", lines: [line], totalCents: 100),
            .paymentReceived(paymentID: id("p-a"), amountCents: 100, heldUntilMs: nil), .orderPaid(paidCents: 100),
            .paymentReceived(paymentID: id("p-b"), amountCents: 100, heldUntilMs: nil), .orderPaid(paidCents: 100),
        ])
        #expect(merged.status == .paid)
        #expect(merged.paidCents == 100)
        #expect(merged.payment(id("p-b"))?.refundedCents == 100)
        #expect(merged.payment(id("p-b"))?.refunds == [.reconciled: 100])
        #expect(merged.conflicts.isEmpty)
    }

    @Test func aRefundBothSidesIssuedCountsOnce() {
        let merged = merge([
            .orderPlaced(customer: "a", lines: [line], totalCents: 100),
            .paymentReceived(paymentID: id("p"), amountCents: 150, heldUntilMs: nil),
            .paymentReceived(paymentID: id("p"), amountCents: 150, heldUntilMs: nil),
            .paymentRefunded(paymentID: id("p"), amountCents: 50, reason: .overpayment),
            .paymentRefunded(paymentID: id("p"), amountCents: 50, reason: .overpayment),
            .orderPaid(paidCents: 100), .orderPaid(paidCents: 100),
        ])
        #expect(merged.paidCents == 100)
        #expect(merged.refundedCents == 50)
        #expect(merged.conflicts.isEmpty)
    }

    @Test func aShipmentStandsOverACancellationAndTheConflictIsRecorded() {
        for cancelFirst in [true, false] {
            let shipped: [OrderEvent] = [.orderShipped(shipmentID: id("s-1"))]
            let cancelled: [OrderEvent] = [.orderCancelled(reason: "changed mind")]
            let state = OrderDecider.fold(OrderState(orderID: id("o")), [
                .orderPlaced(customer: "a", lines: [line], totalCents: 100),
                .paymentReceived(paymentID: id("p"), amountCents: 100, heldUntilMs: nil), .orderPaid(paidCents: 100),
            ] + (cancelFirst ? cancelled + shipped : shipped + cancelled))
            let repair = OrderMerge.reconcile(state)
            #expect(repair == [.conflictRecorded(code: "shipped_and_cancelled", detail: state.conflicts[0].detail)])
            let merged = OrderDecider.fold(state, repair)
            #expect(merged.status == .shipped)
            #expect(merged.shipmentID == id("s-1"))
            #expect(merged.conflicts.map(\.code) == ["shipped_and_cancelled"])
            #expect(merged.conflicts.allSatisfy { $0.recorded })
        }
    }

    @Test func anOrderShipsOnce() {
        let merged = merge([
            .orderPlaced(customer: "a", lines: [line], totalCents: 100),
            .paymentReceived(paymentID: id("p"), amountCents: 100, heldUntilMs: nil), .orderPaid(paidCents: 100),
            .orderShipped(shipmentID: id("s-1")), .orderShipped(shipmentID: id("s-2")), .orderShipped(shipmentID: id("s-1")),
        ])
        #expect(merged.shipmentID == id("s-1"))
        #expect(merged.conflicts.map(\.code) == ["shipped_twice"])
    }

    @Test func anotherBodyForTheSameOrderIsAConflictAndTheFirstStands() {
        let merged = merge([
            .orderPlaced(customer: "a", lines: [line], totalCents: 100),
            .orderPlaced(customer: "b", lines: [line, line], totalCents: 200),
            .orderPlaced(customer: "a", lines: [line], totalCents: 100),
        ])
        #expect(merged.customer == "a")
        #expect(merged.conflicts.map(\.code) == ["placed_twice"])
    }

    @Test func aPaymentHeldOnOneSideIsAppliedToTheOrderTheOtherSidePlaced() {
        let merged = merge([
            .paymentReceived(paymentID: id("p"), amountCents: 120, heldUntilMs: 5_000),
            .orderPlaced(customer: "a", lines: [line], totalCents: 100),
        ])
        #expect(merged.status == .paid)
        #expect(merged.payment(id("p"))?.appliedCents == 100)
        #expect(merged.payment(id("p"))?.refundedCents == 20)
    }

    @Test func aCancelledOrderGivesBackWhatTheOtherSideTook() {
        let merged = merge([
            .orderPlaced(customer: "a", lines: [line], totalCents: 100),
            .orderCancelled(reason: nil),
            .paymentReceived(paymentID: id("p"), amountCents: 40, heldUntilMs: nil),
        ])
        #expect(merged.status == .cancelled)
        #expect(merged.paidCents == 0)
        #expect(merged.payment(id("p"))?.refundedCents == 40)
    }
}

extension OrderMergeTests {
    /// The generator reaches every rule, so the property above is not
    /// vacuous: over the seeds it uses, each kind of conflict and repair
    /// occurs.
    @Test func theGeneratedHistoriesReachEveryRule() {
        var codes: [String: Int] = [:]
        var repairs: [String: Int] = [:]
        for seed in UInt64(0)..<500 {
            let (prefix, a, b) = Self.diverge(seed: seed)
            let merged = OrderMerge.fold(OrderState(orderID: id("o-1")), prefix + a.stored + b.stored)
            for event in OrderMerge.reconcile(merged) {
                if case .conflictRecorded(let code, _) = event { codes[code, default: 0] += 1 } else { repairs[event.typeName, default: 0] += 1 }
            }
        }
        for code in ["placed_twice", "payment_amount_differs", "shipped_twice", "shipped_and_cancelled", "underpaid"] {
            #expect(codes[code, default: 0] > 0, "no history with \(code): \(codes)")
        }
        for type in ["PaymentApplied", "PaymentRefunded", "OrderPaid"] {
            #expect(repairs[type, default: 0] > 0, "no repair with \(type): \(repairs)")
        }
    }
}
