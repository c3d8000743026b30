import OrderDomain
import StatsProjection
import Testing

@Suite struct StatsFoldTests {
    static let catalog = Catalog.standard

    /// Random orders driven through the decider, some led on two sides of a
    /// partition, as the events the logs would hold.
    static func history(seed: UInt64) -> [StatsEvent] {
        var random = SplitMix64(seed: seed)
        var events: [StatsEvent] = []
        var now: Int64 = 1_700_000_000_000
        for index in 0..<Int(5 + random.next() % 20) {
            let orderID = ClientID("o-\(index)")!
            var sides: [(name: String, state: OrderState)] = [("a\(index)", OrderState(orderID: orderID))]
            for step in 0..<Int(1 + random.next() % 10) {
                if step == 3 && random.next() % 4 == 0 { sides.append(("b\(index)", sides[0].state)) }
                let side = Int(random.next() % UInt64(sides.count))
                let command = randomCommand(&random, state: sides[side].state)
                now += Int64(random.next() % 50_000)
                guard case .success(let decision) = OrderDecider.decide(command, state: sides[side].state, context: DecideContext(nowMs: now, catalog: catalog))
                else { continue }
                for event in decision.events {
                    sides[side].state = OrderDecider.evolve(sides[side].state, event)
                    events.append(StatsEvent(
                        orderID: orderID.rawValue, version: sides[side].state.version,
                        eventID: "\(sides[side].name)-\(sides[side].state.version)", recordedAtMs: now, event: event))
                }
            }
        }
        return events
    }

    static func randomCommand(_ random: inout SplitMix64, state: OrderState) -> OrderCommand {
        switch random.next() % 6 {
        case 0, 1:
            let lines = (0..<Int(1 + random.next() % 3)).map { _ in
                OrderLineRequest(sku: catalog.all[Int(random.next() % 4)].sku, qty: Int(1 + random.next() % 3))
            }
            return .place(customer: "c", lines: lines)
        case 2, 3:
            let amount = random.next() % 2 == 0 ? max(1, state.outstandingCents) : Cents(1 + random.next() % 20_000)
            return .pay(paymentID: ClientID("p-\(random.next() % 4)")!, amountCents: amount)
        case 4:
            return .cancel(reason: nil)
        default:
            return .ship(shipmentID: ClientID("s-\(random.next() % 2)")!)
        }
    }

    @Test(arguments: 0..<200)
    func anySplitIntoBatchesInAnyOrderGivesTheSameProjection(seed: UInt64) {
        let events = Self.history(seed: seed)
        let expected = StatsFold.totals(of: events)
        var random = SplitMix64(seed: seed ^ 0xba7c4)
        // Shuffled, with some events delivered twice (a copy from a replica).
        var delivered = events.shuffled(using: &random)
        delivered += events.filter { _ in random.next() % 5 == 0 }
        delivered.shuffle(using: &random)

        var held: [String: [StatsEvent]] = [:]
        var totals = StatsTotals()
        var counted = 0
        var rest = delivered[...]
        while !rest.isEmpty {
            let size = Int(1 + random.next() % 12)
            let batch = Array(rest.prefix(size))
            rest = rest.dropFirst(size)
            let touched = Set(batch.map(\.orderID))
            let (fresh, delta) = StatsFold.apply(batch, held: held.filter { touched.contains($0.key) })
            for event in fresh { held[event.orderID, default: []].append(event) }
            totals.add(delta)
            counted += fresh.count
        }
        #expect(totals == expected, "seed \(seed)")
        #expect(counted == events.count, "each event counts exactly once (seed \(seed))")
    }

    @Test func anOrderCountsAsItsStateShows() {
        let sku = Self.catalog.all[0]
        let placed = OrderEvent.orderPlaced(
            customer: "c", lines: [OrderLine(sku: sku.sku, qty: 2, unitPriceCents: sku.priceCents)], totalCents: 2 * sku.priceCents)
        let minute: Int64 = 28_333_333
        func event(_ version: Int64, _ event: OrderEvent, at ms: Int64) -> StatsEvent {
            StatsEvent(orderID: "o-1", version: version, eventID: "e-\(version)", recordedAtMs: ms, event: event)
        }
        let paid = [
            event(1, placed, at: minute * 60_000 + 5),
            event(2, .paymentReceived(paymentID: ClientID("p")!, amountCents: 2 * sku.priceCents, heldUntilMs: nil), at: (minute + 1) * 60_000),
            event(3, .orderPaid(paidCents: 2 * sku.priceCents), at: (minute + 1) * 60_000),
        ]
        let totals = StatsFold.totals(of: paid)
        #expect(totals.products[sku.sku] == ProductFigures(unitsOrdered: 2, unitsPaid: 2, revenueCents: 2 * sku.priceCents))
        #expect(totals.statuses == ["paid": 1])
        #expect(totals.minutes[minute] == MinuteFigures(ordersPlaced: 1))
        #expect(totals.minutes[minute + 1] == MinuteFigures(ordersPaid: 1, revenueCents: 2 * sku.priceCents))

        let cancelled = StatsFold.totals(of: paid + [
            event(4, .orderCancelled(reason: nil), at: (minute + 2) * 60_000),
            event(5, .paymentRefunded(paymentID: ClientID("p")!, amountCents: 2 * sku.priceCents, reason: .orderCancelled), at: (minute + 2) * 60_000),
        ])
        #expect(cancelled.products[sku.sku] == ProductFigures(unitsOrdered: 2, unitsRefunded: 2))
        #expect(cancelled.statuses == ["cancelled": 1])
        #expect(cancelled.revenueCents == 0)
    }

    /// A deposed leader's shipment (term 1, never acknowledged) at the
    /// version where the next leader's cancel (term 2) began counts for
    /// nothing, as the engine's fold leaves it out: the order counts as
    /// cancelled, nothing shipped, on every node and after a rebuild.
    @Test func aSupersededEventCountsForNothing() {
        let sku = Self.catalog.all[0]
        let total = 2 * sku.priceCents
        let placed = OrderEvent.orderPlaced(customer: "c", lines: [OrderLine(sku: sku.sku, qty: 2, unitPriceCents: sku.priceCents)], totalCents: total)
        func event(_ version: Int64, _ id: String, _ event: OrderEvent, term: Int64, origin: String) -> StatsEvent {
            StatsEvent(orderID: "o-1", version: version, eventID: id, recordedAtMs: 60_000, event: event, term: StatsEvent.term(term, origin: origin))
        }
        let events = [
            event(1, "a-1", placed, term: 1, origin: "api-1"),
            event(2, "a-2", .paymentReceived(paymentID: ClientID("p")!, amountCents: total, heldUntilMs: nil), term: 1, origin: "api-1"),
            event(3, "a-3", .orderPaid(paidCents: total), term: 1, origin: "api-1"),
            event(4, "a-4", .orderShipped(shipmentID: ClientID("s")!), term: 1, origin: "api-1"),
            event(4, "b-4", .orderCancelled(reason: nil), term: 2, origin: "api-2"),
            event(5, "b-5", .paymentRefunded(paymentID: ClientID("p")!, amountCents: total, reason: .orderCancelled), term: 2, origin: "api-2"),
        ]
        for arrival in [events, events.reversed()] {
            let totals = StatsFold.totals(of: Array(arrival))
            #expect(totals.statuses == ["cancelled": 1])
            #expect(totals.products[sku.sku]?.unitsShipped == 0)
            #expect(totals.products[sku.sku]?.unitsRefunded == 2)
        }
    }
}
