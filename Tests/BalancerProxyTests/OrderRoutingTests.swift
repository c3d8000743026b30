import NIOCore
import Testing

@testable import Balancer

/// The ring strategy sends a request to its order's leader: the order is
/// the path's, or a new order's `id` in its body.
@Suite struct OrderRoutingTests {
    static func body(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    @Test func aNewOrderIsRoutedByTheIdInItsBody() {
        let placed = #"{"id": "o-17", "customer": "c-1", "lines": [{"sku": "SKU-00001", "qty": 2, "id": "not-this"}]}"#
        #expect(Balancer.orderID(path: "/orders", body: Self.body(placed)) == "o-17")
        // Escapes are read as the API node reads them.
        #expect(Balancer.orderID(path: "/orders?x=1", body: Self.body(#"{"customer":"c","id":"o-\u0031"}"#)) == "o-1")
    }

    @Test func anOrdersOwnRoutesAreRoutedByThePath() {
        #expect(Balancer.orderID(path: "/orders/o-9/payments", body: Self.body(#"{"id":"p-1","amount_cents":5}"#)) == "o-9")
        #expect(Balancer.orderID(path: "/orders/o-9?verbose=1", body: nil) == "o-9")
    }

    @Test func aBodyTheAPIWouldRefuseNamesNoOrder() {
        for text in [#"{"id": 17}"#, #"{"id": "o-1""#, #"["o-1"]"#, #"{"id": "o-1", "id": "o-2"}"#, ""] {
            #expect(Balancer.orderID(path: "/orders", body: Self.body(text)) == nil, "\(text)")
        }
        // Not UTF-8.
        #expect(Balancer.orderID(path: "/orders", body: ByteBuffer(bytes: [0x7B, 0x22, 0x69, 0x64, 0x22, 0x3A, 0x22, 0xFF, 0x22, 0x7D])) == nil)
        #expect(Balancer.orderID(path: "/orders", body: nil) == nil)
        #expect(Balancer.orderID(path: "/products", body: Self.body(#"{"id":"o-1"}"#)) == nil)
    }
}
