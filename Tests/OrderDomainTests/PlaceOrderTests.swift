import OrderDomain
import Testing

@Suite struct PlaceOrderTests {
    @Test func placeOrderComputesTotalFromCatalog() {
        var order = Order()
        let result = order.place([(sku1, 2), (sku2, 3)])
        #expect(result.outcome == .created)
        #expect(result.events == [
            .orderPlaced(
                customer: "alice",
                lines: [OrderLine(sku: sku1, qty: 2, unitPriceCents: price1), OrderLine(sku: sku2, qty: 3, unitPriceCents: price2)],
                totalCents: 2 * price1 + 3 * price2)
        ])
        #expect(order.state.status == .placed)
        #expect(order.state.customer == "alice")
        #expect(order.state.totalCents == 2 * price1 + 3 * price2)
        #expect(order.state.paidCents == 0)
        #expect(order.state.version == 1)
    }

    @Test func repeatPlaceWithSameBodyIsReplayed() {
        var order = Order()
        _ = order.place([(sku1, 2), (sku2, 1)])
        let again = order.place([(sku1, 2), (sku2, 1)])
        #expect(again.outcome == .replayed)
        #expect(again.events == [])
        #expect(order.state.version == 1)
    }

    @Test(arguments: [
        ([(sku1, 3)], "alice"),
        ([(sku2, 2)], "alice"),
        ([(sku1, 2)], "bob"),
        ([(sku1, 2), (sku2, 1)], "alice"),
        ([(sku1, 1), (sku1, 1)], "alice"),
    ] as [([(String, Int)], String)])
    func placeWithDifferentBodyConflicts(lines: [(String, Int)], customer: String) {
        var order = Order()
        _ = order.place([(sku1, 2)])
        #expect(order.place(lines, customer: customer).errorCode == "order_id_reused")
        #expect(order.state.version == 1)
    }

    @Test func unknownSkuIsRejected() {
        var order = Order()
        #expect(order.place([(sku1, 1), ("NO-SUCH-SKU", 1)]).errorCode == "unknown_sku")
        #expect(!order.state.exists)
        #expect(order.events.isEmpty)
    }

    @Test func qtyZeroIsRejected() {
        var order = Order()
        #expect(order.place([(sku1, 0)]).errorCode == "invalid_qty")
        #expect(!order.state.exists)
        #expect(order.events.isEmpty)
    }

    @Test(arguments: [
        ([(sku1, -1)], "alice", "invalid_qty"),
        ([(sku1, Limits.qtyMax + 1)], "alice", "invalid_qty"),
        ([], "alice", "no_lines"),
        ([(sku1, 1)], "   ", "invalid_customer"),
        ([(sku1, 1)], "", "invalid_customer"),
        ([(sku1, 1)], String(repeating: "c", count: Limits.customerBytesMax + 1), "invalid_customer"),
        // Bytes, not characters: 65 two-byte characters are 130 bytes.
        ([(sku1, 1)], String(repeating: "é", count: 65), "invalid_customer"),
        (Array(repeating: (sku1, 1), count: Limits.linesMax + 1), "alice", "too_many_lines"),
    ] as [([(String, Int)], String, String)])
    func invalidPlaceCommandsAreRejectedWithoutEvents(lines: [(String, Int)], customer: String, code: String) {
        var order = Order()
        #expect(order.place(lines, customer: customer).errorCode == code)
        #expect(order.state.version == 0)
        #expect(!order.state.exists)
    }

    @Test func limitsThemselvesAreAccepted() {
        var order = Order()
        let lines = Array(repeating: (sku1, Limits.qtyMax), count: Limits.linesMax)
        #expect(order.place(lines, customer: String(repeating: "c", count: Limits.customerBytesMax)).outcome == .created)
        #expect(order.state.totalCents == Cents(Limits.linesMax * Limits.qtyMax) * price1)
    }

    @Test func unitPricesComeFromTheContextCatalog() {
        var order = Order()
        order.catalog = Catalog(products: [Product(sku: "X", name: "Thing", priceCents: 250, stock: 1)])
        _ = order.place([("X", 4)])
        #expect(order.state.totalCents == 1000)
        #expect(order.state.lines == [OrderLine(sku: "X", qty: 4, unitPriceCents: 250)])
    }
}
