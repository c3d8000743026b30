/// The order state machine: `decide` turns a command into events (or a
/// refusal), `evolve` folds an event into the state. Pure: no clock, no
/// randomness, no I/O; time comes in through `DecideContext`.
///
/// Contract for the shell: append a decision's events all together, in
/// order, and fold them with `evolve` before deciding the next command.
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

    public static func fold(_ state: OrderState, _ events: [OrderEvent]) -> OrderState {
        var state = state
        for event in events { evolve(&state, event) }
        return state
    }

    // MARK: Place

    private static func place(customer: String, lines requests: [OrderLineRequest], state: OrderState, context: DecideContext) -> Result<Decision, DomainError> {
        let lines: [OrderLine]
        switch validate(customer: customer, lines: requests, catalog: context.catalog) {
        case .success(let priced): lines = priced
        case .failure(let error): return .failure(error)
        }
        if state.exists {
            // The order id is the idempotency key: the same body is a retry.
            let same = state.customer == customer && state.lines.map { OrderLineRequest(sku: $0.sku, qty: $0.qty) } == requests
            return same
                ? .success(Decision(events: [], outcome: .replayed))
                : .failure(.conflict(code: "order_id_reused", message: "order \(state.orderID) exists with a different body"))
        }
        let total = lines.lazy.map(\.lineTotalCents).sumSaturating()
        var events: [OrderEvent] = [.orderPlaced(customer: customer, lines: lines, totalCents: total)]
        let settled = settleHeldPayments(of: state, status: .placed, outstandingCents: total)
        events += settled.events
        if settled.outstandingCents == 0 { events.append(.orderPaid(paidCents: total)) }
        return .success(Decision(events: events, outcome: .created))
    }

    /// Checks a place command's body and prices its lines from the catalog.
    private static func validate(customer: String, lines requests: [OrderLineRequest], catalog: Catalog) -> Result<[OrderLine], DomainError> {
        guard !customer.trimmingSpaces.isEmpty, customer.utf8.count <= Limits.customerBytesMax else {
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
            guard let product = catalog.product(sku: request.sku) else {
                return .failure(.invalid(code: "unknown_sku", message: "no product with sku '\(request.sku)'"))
            }
            lines.append(OrderLine(sku: product.sku, qty: request.qty, unitPriceCents: product.priceCents))
        }
        return .success(lines)
    }

    /// Events that settle the held payments of an order that now exists, in
    /// arrival order: each applies what is still outstanding and the excess
    /// goes back; on a cancelled order all of it goes back. Payments already
    /// refunded (order never arrived) are not held and stay refunded.
    static func settleHeldPayments(of state: OrderState, status: OrderStatus, outstandingCents: Cents) -> (events: [OrderEvent], outstandingCents: Cents) {
        var events: [OrderEvent] = []
        var outstanding = outstandingCents
        for payment in state.payments where payment.status == .held {
            if status == .cancelled {
                events.append(.paymentRefunded(paymentID: payment.id, amountCents: payment.amountCents, reason: .orderCancelled))
                continue
            }
            let applied = min(payment.amountCents, outstanding)
            if applied > 0 { events.append(.paymentApplied(paymentID: payment.id, amountCents: applied)) }
            if payment.amountCents > applied {
                events.append(.paymentRefunded(paymentID: payment.id, amountCents: payment.amountCents - applied, reason: .overpayment))
            }
            outstanding -= max(0, applied)
        }
        return (events, outstanding)
    }

    // MARK: Pay

    private static func pay(id: ClientID, amount: Cents, state: OrderState, context: DecideContext) -> Result<Decision, DomainError> {
        guard (1...Limits.amountCentsMax).contains(amount) else {
            return .failure(.invalid(code: "invalid_amount", message: "amount_cents must be 1-\(Limits.amountCentsMax), got \(amount)"))
        }
        if let existing = state.payment(id) {
            // The payment id is the idempotency key: the same amount is a retry.
            return existing.amountCents == amount
                ? .success(Decision(events: [], outcome: .replayed))
                : .failure(.conflict(code: "payment_id_reused", message: "payment \(id) was recorded with amount \(existing.amountCents)"))
        }
        guard let status = state.status else {
            let deadline = context.nowMs.addingSaturating(context.holdTimeoutMs)
            return .success(Decision(events: [.paymentReceived(paymentID: id, amountCents: amount, heldUntilMs: deadline)], outcome: .held))
        }
        var events: [OrderEvent] = [.paymentReceived(paymentID: id, amountCents: amount, heldUntilMs: nil)]
        if status == .cancelled {
            events.append(.paymentRefunded(paymentID: id, amountCents: amount, reason: .orderCancelled))
            return .success(Decision(events: events, outcome: .created))
        }
        // A paid or shipped order has nothing outstanding: all goes back.
        let outstanding = state.outstandingCents
        let applied = min(amount, outstanding)
        if amount > applied {
            events.append(.paymentRefunded(paymentID: id, amountCents: amount - applied, reason: .overpayment))
        }
        if status == .placed && applied > 0 && applied == outstanding {
            events.append(.orderPaid(paidCents: state.totalCents))
        }
        return .success(Decision(events: events, outcome: .created))
    }

    // MARK: Cancel, ship, timer

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
            // Every cent the order keeps goes back. No payment is held here:
            // held payments are settled when the order is placed.
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

    /// The timer. Before the order exists, held payments past their deadline
    /// are refunded. Once it exists no payment should still be held (placing
    /// settles them), but a log merged from two nodes can hold one; it is
    /// settled here, so the timer that `nextHoldDeadlineMs` asks for always
    /// makes progress instead of firing again and again. Never an error.
    private static func expire(state: OrderState, now: Int64) -> Result<Decision, DomainError> {
        var events: [OrderEvent] = []
        if let status = state.status {
            let settled = settleHeldPayments(of: state, status: status, outstandingCents: state.outstandingCents)
            events = settled.events
            let appliedAny = settled.outstandingCents < state.outstandingCents
            if status == .placed && appliedAny && settled.outstandingCents == 0 {
                events.append(.orderPaid(paidCents: state.totalCents))
            }
        } else {
            for payment in state.payments where payment.status == .held {
                guard let due = payment.heldUntilMs, due <= now else { continue }
                events.append(.paymentRefunded(paymentID: payment.id, amountCents: payment.amountCents, reason: .orderNeverArrived))
            }
        }
        return .success(Decision(events: events, outcome: events.isEmpty ? .replayed : .created))
    }
}

extension String {
    /// The text without leading and trailing whitespace.
    var trimmingSpaces: Substring {
        var text = Substring(self)
        while text.first?.isWhitespace == true { text.removeFirst() }
        while text.last?.isWhitespace == true { text.removeLast() }
        return text
    }
}
