import OrderDomain
import Testing

func id(_ raw: String) -> ClientID { ClientID(raw)! }

let catalog = Catalog.standard
let sku1 = catalog.all[0].sku
let price1 = catalog.all[0].priceCents
let sku2 = catalog.all[1].sku
let price2 = catalog.all[1].priceCents

/// Drives the decider the way a transactor does: decide, then fold.
struct Order {
    var state: OrderState
    var events: [OrderEvent] = []
    var nowMs: Int64 = 1_000_000
    var holdTimeoutMs: Int64 = 60_000
    var catalog = Catalog.standard

    init(_ raw: String = "o-1") { state = OrderState(orderID: id(raw)) }

    var context: DecideContext { DecideContext(nowMs: nowMs, catalog: catalog, holdTimeoutMs: holdTimeoutMs) }

    @discardableResult
    mutating func run(_ command: OrderCommand) -> Result<Decision, DomainError> {
        let result = OrderDecider.decide(command, state: state, context: context)
        if case .success(let decision) = result {
            state = OrderDecider.fold(state, decision.events)
            events += decision.events
        }
        return result
    }

    mutating func accept(_ command: OrderCommand, sourceLocation: SourceLocation = #_sourceLocation) -> Decision? {
        switch run(command) {
        case .success(let decision): return decision
        case .failure(let error):
            Issue.record("\(command) refused: \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    mutating func place(_ lines: [(String, Int)] = [(sku1, 1)], customer: String = "alice") -> Result<Decision, DomainError> {
        run(.place(customer: customer, lines: lines.map { OrderLineRequest(sku: $0.0, qty: $0.1) }))
    }

    mutating func pay(_ payment: String, _ amount: Cents) -> Result<Decision, DomainError> {
        run(.pay(paymentID: id(payment), amountCents: amount))
    }
}

extension Result where Success == Decision, Failure == DomainError {
    var errorCode: String? {
        guard case .failure(let error) = self else { return nil }
        switch error {
        case .invalid(let code, _), .conflict(let code, _): return code
        case .notFound: return "not_found"
        }
    }

    var outcome: Outcome? { (try? get())?.outcome }
    var events: [OrderEvent]? { (try? get())?.events }
}
