extension OrderDecider {
    /// Folds one event into the state and counts it in `version`.
    ///
    /// Total: any event sequence folds without trapping, because a log merged
    /// from several nodes may hold odd ones. What does not apply (a second
    /// placement, a repeat payment id, a refund of an unknown payment, a
    /// status change that is not forward) is ignored but still counted.
    ///
    /// Money, per payment (see `PaymentRecord`): a received payment that is
    /// not held applies in full (`appliedCents = amount`); a held one applies
    /// only the event's amount at `paymentApplied`, leaving the excess
    /// unallocated for the refund that follows. A refund takes unallocated
    /// money first, then applied money, never more than the payment has left;
    /// refunding a held payment refunds all of it. So for a payment not
    /// held, `amountCents == appliedCents + refundedCents`, and the order's
    /// `paidCents` is the sum of `appliedCents`.
    public static func evolve(_ state: OrderState, _ event: OrderEvent) -> OrderState {
        var state = state
        evolve(&state, event)
        return state
    }

    /// `evolve` in place: a fold over many events copies nothing (the value
    /// form copies the payments array on every event it changes).
    public static func evolve(_ state: inout OrderState, _ event: OrderEvent) {
        state.version &+= 1
        switch event {
        case .orderPlaced(let customer, let lines, let total):
            guard !state.exists else {
                // Placed on both sides: the same body is a retry; another
                // body is a conflict, and the first placement stands.
                if state.customer != customer || state.lines != lines || state.totalCents != total {
                    state.noteConflict("placed_twice", "placed again with another body (\(customer), \(total) cents); the first placement stands")
                }
                break
            }
            state.status = .placed
            state.customer = customer
            state.lines = lines
            state.totalCents = total
        case .paymentReceived(let id, let amount, let heldUntil):
            if let index = state.paymentIndex(id) {
                if state.payments[index].amountCents != amount {
                    state.noteConflict("payment_amount_differs", "payment \(id) received again with \(amount) cents; the first amount stands")
                }
                break
            }
            state.payments.append(received(id: id, amount: amount, heldUntilMs: heldUntil, state: state))
        case .paymentApplied(let id, let amount):
            guard let index = state.paymentIndex(id), state.payments[index].status == .held else { break }
            // The excess of a held payment is refunded by the next event.
            state.payments[index].appliedCents = min(max(0, amount), max(0, state.payments[index].amountCents))
            state.payments[index].heldUntilMs = nil
            state.payments[index].status = .applied
        case .paymentRefunded(let id, let amount, let reason):
            guard let index = state.paymentIndex(id) else { break }
            if reason != .reconciled, let earlier = state.payments[index].refunds[reason] {
                if earlier != amount {
                    state.noteConflict("refund_differs", "payment \(id) refunded twice for \(reason.rawValue) (\(earlier) and \(amount) cents); the first refund stands")
                }
                break
            }
            state.payments[index] = refunded(state.payments[index], amountCents: amount)
            state.payments[index].refunds[reason, default: 0] = state.payments[index].refunds[reason, default: 0].addingSaturating(amount)
        case .orderPaid:
            if state.status == .placed { state.status = .paid }
        case .orderCancelled(let reason):
            if state.status == .placed || state.status == .paid {
                state.status = .cancelled
                state.cancelReason = reason
            } else if state.status == .shipped {
                state.noteConflict("shipped_and_cancelled", "cancelled on one side and shipped on the other; the shipment stands")
            }
        case .orderShipped(let id):
            switch state.status {
            case .paid?:
                state.status = .shipped
                state.shipmentID = id
            case .cancelled?:
                // Goods that left cannot be unsent: the shipment wins.
                state.status = .shipped
                state.shipmentID = id
                state.noteConflict("shipped_and_cancelled", "cancelled on one side and shipped on the other; the shipment stands")
            case .shipped? where state.shipmentID != id:
                state.noteConflict("shipped_twice", "shipped again as \(id); shipment \(state.shipmentID?.rawValue ?? "?") stands")
            default:
                break
            }
        case .conflictRecorded(let code, let detail):
            if let index = state.conflicts.firstIndex(where: { $0.code == code }) {
                state.conflicts[index].recorded = true
            } else {
                state.conflicts.append(OrderConflict(code: code, detail: detail, recorded: true))
            }
        }
    }

    /// A new payment record. Its first outcome mirrors what `decide` did with
    /// the payment: held without an order; refunded whole when the order was
    /// cancelled or had nothing outstanding; applied otherwise.
    private static func received(id: ClientID, amount: Cents, heldUntilMs: Int64?, state: OrderState) -> PaymentRecord {
        let held = heldUntilMs != nil
        let firstOutcome: PaymentStatus =
            if held { .held }
            else if state.status == .cancelled || (state.exists && state.outstandingCents == 0) { .refunded }
            else { .applied }
        return PaymentRecord(
            id: id, amountCents: amount, appliedCents: held ? 0 : max(0, amount), refundedCents: 0,
            heldUntilMs: heldUntilMs, status: held ? .held : .applied, firstOutcome: firstOutcome)
    }

    private static func refunded(_ payment: PaymentRecord, amountCents: Cents) -> PaymentRecord {
        var payment = payment
        if payment.status == .held {
            // Refunded whole: the order never arrived, or it arrived with
            // nothing left to pay.
            payment.heldUntilMs = nil
            payment.appliedCents = 0
            payment.refundedCents = max(0, payment.amountCents)
            payment.status = .refunded
            return payment
        }
        // Money not yet allocated (the excess of a held payment after
        // `paymentApplied`) goes back first; only then applied money.
        let unallocated = max(0, payment.amountCents.subtractingSaturating(payment.appliedCents).subtractingSaturating(payment.refundedCents))
        let refund = min(max(0, amountCents), unallocated.addingSaturating(payment.appliedCents))
        payment.appliedCents -= max(0, refund - unallocated)
        payment.refundedCents = payment.refundedCents.addingSaturating(refund)
        if payment.appliedCents == 0 {
            payment.status = .refunded
        } else if payment.refundedCents > 0 {
            payment.status = .partiallyRefunded
        }
        return payment
    }
}

extension OrderState {
    /// One entry per code: the first detail met stands.
    mutating func noteConflict(_ code: String, _ detail: String) {
        guard !conflicts.contains(where: { $0.code == code }) else { return }
        conflicts.append(OrderConflict(code: code, detail: detail, recorded: false))
    }
}
