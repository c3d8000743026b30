import OrderDomain
import Testing

@Suite struct CatalogTests {
    @Test func standardCatalogHasOverAThousandUniqueSortedProducts() {
        let all = Catalog.standard.page(after: nil, limit: .max).products
        #expect(Catalog.standard.count >= 1000)
        #expect(all.count == Catalog.standard.count)
        #expect(Set(all.map(\.sku)).count == all.count)
        #expect(all.map(\.sku) == all.map(\.sku).sorted())
        #expect(all.allSatisfy { (99...49_999).contains($0.priceCents) && (0...500).contains($0.stock) && !$0.name.isEmpty })
        let outOfStock = all.filter { $0.stock == 0 }.count
        #expect(outOfStock > 0 && outOfStock < all.count / 10, "a few products are out of stock")
        #expect(all.allSatisfy { Catalog.standard.product(sku: $0.sku) == $0 })
    }

    /// Pinned: the catalog is reference data, the same in every process and
    /// release. A change here changes the price of existing orders' lines.
    @Test func standardCatalogIsStable() {
        let first = Catalog.standard.all[0]
        #expect(first == Product(sku: "SKU-00001", name: "Green Ceramic Lamp", priceCents: 8673, stock: 187))
        #expect(Catalog.standard.product(sku: "SKU-00042")?.sku == "SKU-00042")
        #expect(Catalog.standard.all.last?.sku == "SKU-01200")
        #expect(Catalog.standard.count == 1200)
    }

    @Test func pagingCoversAllProductsExactlyOnce() {
        for limit in [1, 7, 77, 1000, 1200, 5000] {
            var seen: [String] = []
            var after: String?
            var pages = 0
            repeat {
                let page = Catalog.standard.page(after: after, limit: limit)
                #expect(page.products.count <= limit)
                seen += page.products.map(\.sku)
                after = page.next
                pages += 1
            } while after != nil && pages <= 2000
            #expect(seen == Catalog.standard.all.map(\.sku), "limit \(limit)")
        }
    }

    @Test func pagingEdges() {
        #expect(Catalog.standard.page(after: "SKU-01200", limit: 10).products.isEmpty)
        #expect(Catalog.standard.page(after: "SKU-01200", limit: 10).next == nil)
        #expect(Catalog.standard.page(after: "A", limit: 1).products.first?.sku == "SKU-00001")
        #expect(Catalog.standard.page(after: "SKU-00001x", limit: 1).products.first?.sku == "SKU-00002", "after need not be a SKU")
        #expect(Catalog.standard.page(after: nil, limit: 2).next == "SKU-00002")
        #expect(Catalog.standard.page(after: nil, limit: 0).products.isEmpty)
        #expect(Catalog.standard.page(after: nil, limit: -5).products.isEmpty)
    }

    @Test func customCatalogIsSortedBySku() {
        let catalog = Catalog(products: [
            Product(sku: "b", name: "B", priceCents: 2, stock: 1), Product(sku: "a", name: "A", priceCents: 1, stock: 1),
        ])
        #expect(catalog.page(after: nil, limit: 10).products.map(\.sku) == ["a", "b"])
        #expect(catalog.product(sku: "b")?.priceCents == 2)
        #expect(catalog.product(sku: "c") == nil)
    }
}

@Suite struct ClientIDTests {
    @Test func clientIDsFollowThePattern() {
        for good in ["a", "A-z_0.9", "...", String(repeating: "x", count: 64)] {
            #expect(ClientID(good)?.rawValue == good, "\(good)")
            #expect(ClientID.isValid(good))
        }
        for bad in ["", " ", "a b", "a/b", "é", "a\u{0}", String(repeating: "x", count: 65), "a\n", "ａ"] {
            #expect(ClientID(bad) == nil, "\(bad)")
            #expect(!ClientID.isValid(bad))
        }
    }

    @Test func clientIDsCompareAndPrintAsTheirText() {
        #expect(ClientID("a")! < ClientID("b")!)
        #expect(ClientID("o-1")!.description == "o-1")
    }
}
