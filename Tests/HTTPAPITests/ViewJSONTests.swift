import Foundation
import OrderDomain
import Testing

@testable import HTTPAPI

/// The command path writes its answers with the domain's JSON writer; they
/// must read exactly as JSONEncoder (sorted keys, absent values left out)
/// wrote them before.
@Suite struct ViewJSONTests {
    static func run(_ commands: [OrderCommand], on orderID: String) -> OrderState {
        var state = OrderState(orderID: ClientID(orderID)!)
        let context = DecideContext(nowMs: 1_000, catalog: .standard, holdTimeoutMs: 60_000)
        for command in commands {
            if case .success(let decision) = OrderDecider.decide(command, state: state, context: context) {
                state = OrderDecider.fold(state, decision.events)
            }
        }
        return state
    }

    static func sameJSON(_ value: some JSONRepresentable) throws -> Bool {
        let mine = try JSONValue.parse(value.json.serialized())
        let theirs = try JSONValue.parse(String(decoding: JSONResponse.encoder.encode(value), as: UTF8.self))
        return mine == theirs
    }

    @Test func ordersPaymentsAndProductsReadAsJSONEncoderWroteThem() throws {
        let sku = Catalog.standard.page(after: nil, limit: 2).products.map(\.sku)
        let held = Self.run([.pay(paymentID: ClientID("p-early")!, amountCents: 5)], on: "o-held")
        let paid = Self.run([
            .place(customer: #"Zoë "the" \ customer"#, lines: [OrderLineRequest(sku: sku[0], qty: 2), OrderLineRequest(sku: sku[1], qty: 1)]),
            .pay(paymentID: ClientID("p-1")!, amountCents: 100),
            .pay(paymentID: ClientID("p-2")!, amountCents: 1_000_000),
            .ship(shipmentID: ClientID("s-1")!),
        ], on: "o-paid")
        let cancelled = Self.run([.place(customer: "c", lines: [OrderLineRequest(sku: sku[0], qty: 1)]), .cancel(reason: "changed\nmind")], on: "o-cancel")
        for state in [held, paid, cancelled] {
            #expect(try Self.sameJSON(OrderView(state)), "\(state)")
            for payment in state.payments {
                #expect(try Self.sameJSON(PaymentReply(order_id: state.orderID.rawValue, payment: PaymentView(payment), order: state.exists ? OrderView(state) : nil)))
            }
        }
        #expect(paid.shipmentID != nil && !paid.payments.isEmpty && cancelled.cancelReason != nil && !held.payments.isEmpty, "the cases hold what they test")
        let page = Catalog.standard.page(after: nil, limit: 3)
        #expect(try Self.sameJSON(ProductPage(products: page.products.map(ProductView.init), next: page.next)))
        #expect(try Self.sameJSON(ProductPage(products: [], next: nil)), "next is null on the last page")
    }
}
