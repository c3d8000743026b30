import OrderDomain
import Wire

/// What the checker compares of an order: everything a client sees of it
/// (the JSON of `GET /orders/{id}`), but not the hold deadlines, which
/// come from the deciding node's wall clock.
struct OrderView: Hashable, Sendable, CustomStringConvertible {
    var status: String
    var customer: String
    var lines: [String]
    var totalCents: Int64
    var payments: [String]
    var shipment: String
    var conflicts: [String]
    var version: Int64

    init(_ state: OrderState) {
        status = state.status?.rawValue ?? "absent"
        customer = state.customer ?? ""
        lines = state.lines.map { "\($0.sku)x\($0.qty)@\($0.unitPriceCents)" }
        totalCents = state.totalCents
        payments = state.payments.map { "\($0.id):\($0.amountCents)=\($0.appliedCents)+\($0.refundedCents) \($0.status.rawValue)" }
        shipment = state.shipmentID?.rawValue ?? ""
        conflicts = state.conflicts.map(\.code)
        version = state.version
    }

    var description: String {
        "\(status) v\(version) total \(totalCents) payments [\(payments.joined(separator: ", "))]"
            + (shipment.isEmpty ? "" : " shipped \(shipment)") + (conflicts.isEmpty ? "" : " conflicts \(conflicts)")
    }
}

/// Whether one order's history of client calls is linearizable against the
/// order state machine (`OrderDecider`): is there one order of the calls,
/// each taking effect at a point between its invocation and its answer, in
/// which every answered call gets the answer the state machine gives? A
/// call whose answer is unknown (503, timeout) may have taken effect at any
/// point after its invocation, or not at all. The timer of a held payment
/// (refund when the order never came) may fire on its own once the hold is
/// over. The search is Wing and Gong's, with the memo of Lowe's (as in
/// Knossos and Porcupine): an order has few concurrent calls, so it is
/// cheap.
struct LinearizabilityCheck {
    struct Call {
        let invokeNs: Int64
        /// `Int64.max` when the answer is unknown.
        let completeNs: Int64
        let call: ForwardedCall
        let answer: ClientAnswer?
        /// Answered `replayed`: this call only checks that the command had
        /// taken effect already and the order was as answered (its effect
        /// is a separate call with an unknown answer).
        var replay = false
        var definite: Bool { completeNs != .max }
    }

    enum Verdict: Equatable {
        case linearizable
        case violation
        /// The search gave up (too many states): neither proven nor refuted.
        case undecided
    }

    let orderID: ClientID
    let calls: [Call]
    let holdTimeoutMs: Int64
    /// How far the nodes' wall clocks may disagree (the hold is measured on them).
    let skewToleranceMs: Int64
    let statesMax: Int

    /// A search state: which calls are placed, and the order's state.
    private struct Memo: Hashable {
        var done: [UInt64]
        var state: OrderState

        static func == (lhs: Memo, rhs: Memo) -> Bool { lhs.done == rhs.done && lhs.state == rhs.state }

        func hash(into hasher: inout Hasher) {
            hasher.combine(done)
            hasher.combine(state.version)
            hasher.combine(state.status)
            for payment in state.payments {
                hasher.combine(payment.id)
                hasher.combine(payment.appliedCents)
                hasher.combine(payment.refundedCents)
            }
            hasher.combine(state.shipmentID)
        }
    }

    init(orderID: ClientID, operations: [History.Operation], holdTimeoutMs: Int64, skewToleranceMs: Int64, statesMax: Int = 200_000) {
        self.orderID = orderID
        self.holdTimeoutMs = holdTimeoutMs
        self.skewToleranceMs = skewToleranceMs
        self.statesMax = statesMax
        calls = operations.flatMap { operation -> [Call] in
            // An unknown read has no effect and tells nothing.
            if case .read = operation.call, !operation.isDefinite { return [] }
            let answer = operation.isDefinite ? operation.answer : nil
            let complete = operation.isDefinite ? operation.completeNs ?? .max : .max
            // A command can reach the leader twice (the network duplicated
            // it, or a balancer sent it again after a timeout), and the copy
            // that answers may be the repeat, after other calls took effect:
            // its effect then happened at one point, the answer at another.
            if case .ok(.replayed?, _)? = answer, case .command = operation.call {
                return [
                    Call(invokeNs: operation.invokeNs, completeNs: .max, call: operation.call, answer: nil),
                    Call(invokeNs: operation.invokeNs, completeNs: complete, call: operation.call, answer: answer, replay: true),
                ]
            }
            return [Call(invokeNs: operation.invokeNs, completeNs: complete, call: operation.call, answer: answer)]
        }.sorted { $0.invokeNs < $1.invokeNs }
    }

    func check() -> Verdict {
        var memo: Set<Memo> = []
        var explored = 0
        var done = [UInt64](repeating: 0, count: (calls.count + 63) / 64)
        let found = search(OrderState(orderID: orderID), &done, &memo, &explored)
        if found { return .linearizable }
        return explored >= statesMax ? .undecided : .violation
    }

    private func isDone(_ done: [UInt64], _ index: Int) -> Bool { done[index / 64] & (1 << UInt64(index % 64)) != 0 }

    private func search(_ state: OrderState, _ done: inout [UInt64], _ memo: inout Set<Memo>, _ explored: inout Int) -> Bool {
        explored += 1
        if explored >= statesMax { return false }
        // The earliest answer among calls not yet placed: every call placed
        // next must have been invoked before it.
        var earliestAnswer = Int64.max
        var pendingDefinite = false
        for (index, call) in calls.enumerated() where !isDone(done, index) && call.definite {
            pendingDefinite = true
            earliestAnswer = min(earliestAnswer, call.completeNs)
        }
        // Calls with unknown answers may never have happened.
        if !pendingDefinite { return true }
        // Calls with unknown answers that ask the same are interchangeable:
        // the earliest invoked stands for all of them.
        var triedUnknown: [ForwardedCall] = []
        for (index, call) in calls.enumerated() where !isDone(done, index) {
            if call.invokeNs > earliestAnswer { break }
            if !call.definite {
                if triedUnknown.contains(call.call) { continue }
                triedUnknown.append(call.call)
            }
            guard let next = step(call, state) else { continue }
            done[index / 64] |= 1 << UInt64(index % 64)
            if memo.insert(Memo(done: done, state: next)).inserted && search(next, &done, &memo, &explored) { return true }
            done[index / 64] &= ~(1 << UInt64(index % 64))
        }
        // The timer refunds a held payment of an order that never came,
        // once its hold is over (on some node's wall clock).
        if state.status == nil {
            for payment in state.payments where payment.status == .held {
                let paidAt = calls.first { if case .command(.pay(payment.id, _)) = $0.call { return true } else { return false } }?.invokeNs ?? 0
                guard paidAt + (holdTimeoutMs - skewToleranceMs) * 1_000_000 <= earliestAnswer else { continue }
                let next = OrderDecider.fold(state, [.paymentRefunded(paymentID: payment.id, amountCents: payment.amountCents, reason: .orderNeverArrived)])
                if memo.insert(Memo(done: done, state: next)).inserted && search(next, &done, &memo, &explored) { return true }
            }
        }
        return false
    }

    /// The state after the call, or nil when the state machine's answer is
    /// not the one the client got.
    private func step(_ call: Call, _ state: OrderState) -> OrderState? {
        let context = DecideContext(nowMs: 0, catalog: .standard, holdTimeoutMs: holdTimeoutMs)
        switch call.call {
        case .read:
            guard case .ok(nil, let seen)? = call.answer else { return call.answer == nil ? state : nil }
            return Self.same(seen, state) ? state : nil
        case .command(let command):
            switch OrderDecider.decide(command, state: state, context: context) {
            case .failure(let error):
                guard let answer = call.answer else { return state }
                guard case .refused(let got) = answer, Self.sameRefusal(got, error) else { return nil }
                return state
            case .success(let decision):
                if call.replay {
                    guard decision.outcome == .replayed, decision.events.isEmpty, case .ok(_, let seen)? = call.answer, Self.same(seen, state)
                    else { return nil }
                    return state
                }
                let next = OrderDecider.fold(state, decision.events)
                guard let answer = call.answer else { return next }
                guard case .ok(let outcome, let seen) = answer, outcome == decision.outcome, Self.same(seen, next) else { return nil }
                return next
            }
        }
    }

    /// Whether a client saw `model`: every field a client reads, but not
    /// the hold deadlines (the deciding node's wall clock sets them).
    static func same(_ seen: OrderState, _ model: OrderState) -> Bool {
        guard seen.version == model.version, seen.status == model.status, seen.totalCents == model.totalCents,
            seen.shipmentID == model.shipmentID, seen.customer == model.customer, seen.lines == model.lines,
            seen.payments.count == model.payments.count, seen.conflicts.map(\.code) == model.conflicts.map(\.code)
        else { return false }
        for (a, b) in zip(seen.payments, model.payments) {
            guard a.id == b.id, a.amountCents == b.amountCents, a.appliedCents == b.appliedCents, a.refundedCents == b.refundedCents,
                a.status == b.status
            else { return false }
        }
        return true
    }

    static func sameRefusal(_ a: DomainError, _ b: DomainError) -> Bool {
        switch (a, b) {
        case (.invalid(let x, _), .invalid(let y, _)), (.conflict(let x, _), .conflict(let y, _)): return x == y
        case (.notFound, .notFound): return true
        default: return false
        }
    }
}
