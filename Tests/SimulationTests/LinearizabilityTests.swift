import OrderDomain
import Testing
import Wire

@testable import ClusterSimulation

/// The per-order linearizability check, on histories written by hand: it
/// accepts what a single leader could have answered, with concurrent and
/// unknown calls placed anywhere they fit, and refuses what no order of the
/// calls explains.
@Suite struct LinearizabilityTests {
    let order = ClientID("o-1")!
    let sku = Catalog.standard.all[0].sku
    var price: Cents { Catalog.standard.all[0].priceCents }
    var place: ForwardedCall { .command(.place(customer: "c", lines: [OrderLineRequest(sku: sku, qty: 1)])) }
    func pay(_ id: String, _ amount: Cents) -> ForwardedCall { .command(.pay(paymentID: ClientID(id)!, amountCents: amount)) }
    var cancel: ForwardedCall { .command(.cancel(reason: nil)) }
    var ship: ForwardedCall { .command(.ship(shipmentID: ClientID("wms-o-1")!)) }

    /// Runs the calls through the state machine in the given order to get
    /// the answers a single leader gives.
    func answers(_ calls: [ForwardedCall]) -> [ClientAnswer] {
        var state = OrderState(orderID: order)
        return calls.map { call in
            switch call {
            case .read: return .ok(outcome: nil, state)
            case .command(let command):
                switch OrderDecider.decide(command, state: state, context: DecideContext(nowMs: 0, catalog: .standard, holdTimeoutMs: 3000)) {
                case .failure(let error): return .refused(error)
                case .success(let decision):
                    state = OrderDecider.fold(state, decision.events)
                    return .ok(outcome: decision.outcome, state)
                }
            }
        }
    }

    func operation(_ index: Int, _ call: ForwardedCall, _ answer: ClientAnswer?, from: Int64, to: Int64?) -> History.Operation {
        var operation = History.Operation(id: index, client: index, order: order, node: "api-1", call: call, invokeNs: from)
        operation.completeNs = to
        operation.answer = answer
        return operation
    }

    func verdict(_ operations: [History.Operation]) -> LinearizabilityCheck.Verdict {
        LinearizabilityCheck(orderID: order, operations: operations, holdTimeoutMs: 3000, skewToleranceMs: 0).check()
    }

    @Test func aSequentialHistoryAsOneLeaderAnswersItIsLinearizable() {
        let calls = [place, pay("p-1", price), .read, ship]
        let got = answers(calls)
        let history = calls.indices.map { operation($0, calls[$0], got[$0], from: Int64($0) * 10, to: Int64($0) * 10 + 5) }
        #expect(verdict(history) == .linearizable)
    }

    @Test func overlappingCallsMayTakeEffectInEitherOrder() {
        // Pay and cancel at once: the cancel came first (the payment went
        // back on the cancelled order), though the pay was sent first.
        let got = answers([place, cancel, pay("p-1", price)])
        let history = [
            operation(0, place, got[0], from: 0, to: 5),
            operation(1, pay("p-1", price), got[2], from: 10, to: 30),
            operation(2, cancel, got[1], from: 12, to: 20),
        ]
        #expect(verdict(history) == .linearizable)
    }

    @Test func anAcknowledgedCancelOverruledByALaterShipmentIsCaught() {
        // Cancelled (acknowledged), then a shipment acknowledged after it:
        // no single leader answers both.
        let paid = answers([place, pay("p-1", price)])
        let cancelled = answers([place, pay("p-1", price), cancel])[2]
        let shipped = answers([place, pay("p-1", price), ship])[2]
        let history = [
            operation(0, place, paid[0], from: 0, to: 5),
            operation(1, pay("p-1", price), paid[1], from: 10, to: 15),
            operation(2, cancel, cancelled, from: 20, to: 25),
            operation(3, ship, shipped, from: 30, to: 35),
        ]
        #expect(verdict(history) == .violation)
    }

    @Test func aCallWithAnUnknownAnswerMayHaveHappenedOrNot() {
        let got = answers([place, pay("p-1", price), .read])
        let unpaidRead = answers([place, .read])[1]
        // The payment timed out; one read saw it, an earlier one did not.
        let history = [
            operation(0, place, got[0], from: 0, to: 5),
            operation(1, pay("p-1", price), .unknown("timed out"), from: 10, to: 5000),
            operation(2, .read, unpaidRead, from: 20, to: 25),
            operation(3, .read, got[2], from: 30, to: 35),
        ]
        #expect(verdict(history) == .linearizable)
        // But a read after the paid read cannot see it unpaid again.
        let regressed = history + [operation(4, .read, unpaidRead, from: 40, to: 45)]
        #expect(verdict(regressed) == .violation)
    }

    @Test func aReadMustSeeEveryWriteAcknowledgedBeforeIt() {
        let got = answers([place, pay("p-1", price)])
        let stale = answers([place, .read])[1]
        let history = [
            operation(0, place, got[0], from: 0, to: 5),
            operation(1, pay("p-1", price), got[1], from: 10, to: 15),
            operation(2, .read, stale, from: 20, to: 25),
        ]
        #expect(verdict(history) == .violation)
    }

    @Test func aRepeatMayAnswerReplayedForAFirstCallTheNetworkDuplicated() {
        let got = answers([place, pay("p-1", price)])
        guard case .ok(_, let state) = got[1] else {
            Issue.record("the payment applies")
            return
        }
        let history = [
            operation(0, place, got[0], from: 0, to: 5),
            operation(1, pay("p-1", price), .ok(outcome: .replayed, state), from: 10, to: 15),
        ]
        #expect(verdict(history) == .linearizable)
    }

    /// A duplicated command can answer from its repeat, after another call
    /// took effect: the answer then shows the state after both.
    @Test func aRepeatMayAnswerAfterAnotherCallTookEffect() {
        let both = answers([place, pay("p-a", price), pay("p-b", price)])
        guard case .ok(_, let afterBoth) = both[2] else {
            Issue.record("the second payment goes through")
            return
        }
        let bFirst = answers([place, pay("p-b", price)])[1]
        guard case .ok(_, let afterB) = bFirst else { return }
        // b answered as if it came before a's effect; a's answer (a repeat)
        // shows both. No single point for a explains it; two do.
        let history = [
            operation(0, place, both[0], from: 0, to: 5),
            operation(1, pay("p-a", price), .ok(outcome: .replayed, afterBoth), from: 10, to: 30),
            operation(2, pay("p-b", price), .ok(outcome: .created, afterBoth), from: 10, to: 25),
        ]
        #expect(verdict(history) == .linearizable)
        // But a repeat cannot answer for a command that never took effect.
        let never = [
            operation(0, place, both[0], from: 0, to: 5),
            operation(1, pay("p-b", price), .ok(outcome: .created, afterB), from: 10, to: 15),
            operation(2, pay("p-b", price), .ok(outcome: .replayed, afterBoth), from: 20, to: 25),
        ]
        #expect(verdict(never) == .violation)
    }

    @Test func aHeldPaymentMayBeRefundedByItsTimerOnlyAfterTheHold() {
        let held = answers([pay("p-1", price)])[0]
        var refunded = OrderState(orderID: order)
        if case .ok(_, let state) = held {
            refunded = OrderDecider.fold(state, [.paymentRefunded(paymentID: ClientID("p-1")!, amountCents: price, reason: .orderNeverArrived)])
        }
        let early = [
            operation(0, pay("p-1", price), held, from: 0, to: 5),
            operation(1, .read, .ok(outcome: nil, refunded), from: 1_000_000_000, to: 1_000_000_005),
        ]
        #expect(verdict(early) == .violation, "refunded 1 s after a 3 s hold")
        let late = [early[0], operation(1, .read, .ok(outcome: nil, refunded), from: 4_000_000_000, to: 4_000_000_005)]
        #expect(verdict(late) == .linearizable)
    }

    @Test func aRefusalMustBeTheStateMachinesRefusal() {
        let got = answers([place])
        let history = [
            operation(0, place, got[0], from: 0, to: 5),
            operation(1, ship, .refused(.conflict(code: "order_not_paid", message: "")), from: 10, to: 15),
        ]
        #expect(verdict(history) == .linearizable)
        let wrong = [history[0], operation(1, ship, .refused(.conflict(code: "order_cancelled", message: "")), from: 10, to: 15)]
        #expect(verdict(wrong) == .violation)
    }
}
