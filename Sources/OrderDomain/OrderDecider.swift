/// The order state machine: `decide` turns a command into events, `evolve`
/// folds an event into the state. Pure: no clock, no randomness, no I/O.
public enum OrderDecider {
    public static func decide(_ command: OrderCommand, state: OrderState, context: DecideContext) -> Result<Decision, DomainError> {
        switch command {
        case .place(let customer, let lines): return place(customer: customer, lines: lines, state: state, context: context)
        case .pay(let id, let amount): return pay(id: id, amount: amount, state: state, context: context)
        case .cancel(let reason): return cancel(reason: reason, state: state)
        case .ship(let id): return ship(id: id, state: state)
        case .expireHeldPayments: return expire(state: state, now: context.nowMs)
        }
    }

    private static func place(customer: String, lines requests: [OrderLineRequest], state: OrderState, context: DecideContext) -> Result<Decision, DomainError> {
        let trimmed = customer.trimmingSpaces
        guard !trimmed.isEmpty, customer.utf8.count <= Limits.customerBytesMax else {
            return .failure(.invalid(code: "invalid_customer", message: "customer must be 1-\(Limits.customerBytesMax) bytes, not blank"))
        }
        guard !requests.isEmpty else { return .failure(.invalid(code: "no_lines", message: "an order needs at least one line")) }
        guard requests.count <= Limits.linesMax else {
            return .failure(.invalid(code: "too_many_lines", message: "an order has at most \(Limits.linesMax) lines"))
        }
        var lines: [OrderLine] = []
        for request in requests {
            guard (1...Limits.qtyMax).contains(request.qty) else {
                return .failure(.invalid(code: "invalid_qty", message: "qty of \(request.sku) must be 1-\(Limits.qtyMax), got \(request.qty)"))
            }
            guard let product = context.catalog.product(sku: request.sku) else {
                return .failure(.invalid(code: "unknown_sku", message: "no product with sku '\(request.sku)'"))
            }
            lines.append(OrderLine(sku: product.sku, qty: request.qty, unitPriceCents: product.priceCents))
        }
        if state.exists {
            let same = state.customer == customer && state.lines.map { OrderLineRequest(sku: $0.sku, qty: $0.qty) } == requests
            return same
                ? .success(Decision(events: [], outcome: .replayed))
                : .failure(.conflict(code: "order_id_reused", message: "order \(state.orderID) exists with a different body"))
        }
        let total = lines.reduce(0) { $0 + $1.lineTotalCents }
        var events: [OrderEvent] = [.orderPlaced(customer: customer, lines: lines, totalCents: total)]
        // Held payments apply in arrival order; what exceeds the total goes back.
        var outstanding = total
        for payment in state.payments where payment.status == .held {
            let applied = min(payment.amountCents, outstanding)
            if applied > 0 { events.append(.paymentApplied(paymentID: payment.id, amountCents: applied)) }
            if payment.amountCents > applied {
                events.append(.paymentRefunded(paymentID: payment.id, amountCents: payment.amountCents - applied, reason: .overpayment))
            }
            outstanding -= applied
        }
        if outstanding == 0 { events.append(.orderPaid(paidCents: total)) }
        return .success(Decision(events: events, outcome: .created))
    }

    private static func pay(id: ClientID, amount: Cents, state: OrderState, context: DecideContext) -> Result<Decision, DomainError> {
        guard (1...Limits.amountCentsMax).contains(amount) else {
            return .failure(.invalid(code: "invalid_amount", message: "amount_cents must be 1-\(Limits.amountCentsMax), got \(amount)"))
        }
        if let existing = state.payment(id) {
            return existing.amountCents == amount
                ? .success(Decision(events: [], outcome: .replayed))
                : .failure(.conflict(code: "payment_id_reused", message: "payment \(id) was recorded with amount \(existing.amountCents)"))
        }
        guard let status = state.status else {
            let held = OrderEvent.paymentReceived(paymentID: id, amountCents: amount, heldUntilMs: context.nowMs + context.holdTimeoutMs)
            return .success(Decision(events: [held], outcome: .held))
        }
        var events: [OrderEvent] = [.paymentReceived(paymentID: id, amountCents: amount, heldUntilMs: nil)]
        if status == .cancelled {
            events.append(.paymentRefunded(paymentID: id, amountCents: amount, reason: .orderCancelled))
            return .success(Decision(events: events, outcome: .created))
        }
        let outstanding = state.outstandingCents
        let applied = min(amount, outstanding)
        if amount > applied {
            events.append(.paymentRefunded(paymentID: id, amountCents: amount - applied, reason: .overpayment))
        }
        if applied > 0 && applied == outstanding && status == .placed {
            events.append(.orderPaid(paidCents: state.totalCents))
        }
        return .success(Decision(events: events, outcome: .created))
    }

    private static func cancel(reason: String?, state: OrderState) -> Result<Decision, DomainError> {
        if let reason, reason.utf8.count > Limits.reasonBytesMax {
            return .failure(.invalid(code: "invalid_reason", message: "reason is at most \(Limits.reasonBytesMax) bytes"))
        }
        switch state.status {
        case nil:
            return .failure(.notFound(message: "order \(state.orderID) does not exist"))
        case .cancelled?:
            return .success(Decision(events: [], outcome: .replayed))
        case .shipped?:
            return .failure(.conflict(code: "order_shipped", message: "order \(state.orderID) has shipped and cannot be cancelled"))
        case .placed?, .paid?:
            var events: [OrderEvent] = [.orderCancelled(reason: reason)]
            for payment in state.payments where payment.appliedCents > 0 {
                events.append(.paymentRefunded(paymentID: payment.id, amountCents: payment.appliedCents, reason: .orderCancelled))
            }
            return .success(Decision(events: events, outcome: .created))
        }
    }

    private static func ship(id: ClientID, state: OrderState) -> Result<Decision, DomainError> {
        switch state.status {
        case nil:
            return .failure(.notFound(message: "order \(state.orderID) does not exist"))
        case .shipped?:
            return state.shipmentID == id
                ? .success(Decision(events: [], outcome: .replayed))
                : .failure(.conflict(code: "shipment_id_reused", message: "order \(state.orderID) shipped as \(state.shipmentID?.rawValue ?? "?")"))
        case .cancelled?:
            return .failure(.conflict(code: "order_cancelled", message: "order \(state.orderID) is cancelled"))
        case .placed?:
            return .failure(.conflict(code: "order_not_paid", message: "order \(state.orderID) is not paid yet"))
        case .paid?:
            return .success(Decision(events: [.orderShipped(shipmentID: id)], outcome: .created))
        }
    }

    private static func expire(state: OrderState, now: Int64) -> Result<Decision, DomainError> {
        guard !state.exists else { return .success(Decision(events: [], outcome: .replayed)) }
        let events = state.payments.compactMap { payment -> OrderEvent? in
            guard payment.status == .held, let due = payment.heldUntilMs, due <= now else { return nil }
            return .paymentRefunded(paymentID: payment.id, amountCents: payment.amountCents, reason: .orderNeverArrived)
        }
        return .success(Decision(events: events, outcome: events.isEmpty ? .replayed : .created))
    }

    // MARK: Evolve

    /// Total: any event sequence folds without trapping (merged logs may hold
    /// odd ones); what does not apply is ignored, and the version counts it.
    public static func evolve(_ state: OrderState, _ event: OrderEvent) -> OrderState {
        var state = state
        state.version += 1
        switch event {
        case .orderPlaced(let customer, let lines, let total):
            guard !state.exists else { break }
            state.status = .placed
            state.customer = customer
            state.lines = lines
            state.totalCents = total
        case .paymentReceived(let id, let amount, let heldUntil):
            guard state.paymentIndex(id) == nil else { break }
            let held = heldUntil != nil
            state.payments.append(PaymentRecord(
                id: id, amountCents: amount, appliedCents: held ? 0 : amount, refundedCents: 0,
                heldUntilMs: heldUntil, status: held ? .held : .applied))
        case .paymentApplied(let id, let amount):
            guard let index = state.paymentIndex(id), state.payments[index].status == .held else { break }
            state.payments[index].appliedCents = min(amount, state.payments[index].amountCents)
            // The rest of a held payment is refunded by the next event.
            state.payments[index].refundedCents = 0
            state.payments[index].heldUntilMs = nil
            state.payments[index].status = .applied
        case .paymentRefunded(let id, let amount, _):
            guard let index = state.paymentIndex(id) else { break }
            var payment = state.payments[index]
            if payment.status == .held {
                // A held payment is refunded whole (never arrived, or excess at placing).
                payment.heldUntilMs = nil
                payment.appliedCents = 0
                payment.refundedCents = payment.amountCents
            } else {
                let refund = min(amount, payment.amountCents - payment.refundedCents)
                payment.refundedCents += refund
                payment.appliedCents = payment.amountCents - payment.refundedCents
            }
            payment.status = payment.appliedCents == 0 ? .refunded : .partiallyRefunded
            state.payments[index] = payment
        case .orderPaid:
            if state.status == .placed { state.status = .paid }
        case .orderCancelled(let reason):
            if state.status == .placed || state.status == .paid {
                state.status = .cancelled
                state.cancelReason = reason
            }
        case .orderShipped(let id):
            if state.status == .paid {
                state.status = .shipped
                state.shipmentID = id
            }
        }
        return state
    }

    public static func fold(_ state: OrderState, _ events: [OrderEvent]) -> OrderState {
        events.reduce(state, evolve)
    }
}

extension String {
    var trimmingSpaces: Substring {
        var text = Substring(self)
        while text.first?.isWhitespace == true { text.removeFirst() }
        while text.last?.isWhitespace == true { text.removeLast() }
        return text
    }
}
