/// A product of the shop's catalog. Prices in integer cents.
public struct Product: Sendable, Equatable, Codable {
    public let sku: String
    public let name: String
    public let priceCents: Cents
    public let stock: Int

    public init(sku: String, name: String, priceCents: Cents, stock: Int) {
        self.sku = sku
        self.name = name
        self.priceCents = priceCents
        self.stock = stock
    }
}

/// Reference data shipped with the engine, sorted by SKU.
public struct Catalog: Sendable {
    private let products: [Product]
    private let index: [String: Int]

    public init(products: [Product]) {
        self.products = products.sorted { $0.sku < $1.sku }
        var index: [String: Int] = [:]
        for (position, product) in self.products.enumerated() { index[product.sku] = position }
        self.index = index
    }

    public var count: Int { products.count }
    public var all: [Product] { products }

    public func product(sku: String) -> Product? {
        index[sku].map { products[$0] }
    }

    /// Up to `limit` products after `after` (exclusive); `next` is the last
    /// SKU of the page when more follow, for the following request.
    public func page(after: String?, limit: Int) -> (products: [Product], next: String?) {
        var start = 0
        if let after {
            // First product whose SKU sorts after `after` (binary search).
            var low = 0
            var high = products.count
            while low < high {
                let middle = (low + high) / 2
                if products[middle].sku <= after { low = middle + 1 } else { high = middle }
            }
            start = low
        }
        let end = min(products.count, start + max(0, limit))
        let page = Array(products[start..<end])
        return (page, end < products.count ? page.last?.sku : nil)
    }

    /// 1,200 products, the same in every process and release: names and
    /// prices come from fixed word lists and a fixed-seed generator.
    public static let standard: Catalog = {
        let colours = ["Red", "Blue", "Green", "Black", "White", "Grey", "Yellow", "Orange", "Purple", "Teal", "Navy", "Olive"]
        let materials = ["Ceramic", "Steel", "Oak", "Cotton", "Wool", "Glass", "Leather", "Bamboo", "Linen", "Copper"]
        let things = ["Mug", "Lamp", "Chair", "Scarf", "Bowl", "Kettle", "Notebook", "Backpack", "Vase", "Blanket"]
        var random = SplitMix64(seed: 0x0D0E_4E11)
        var products: [Product] = []
        for number in 1...1200 {
            let name = "\(colours[Int(random.next() % UInt64(colours.count))]) \(materials[(number / 10) % materials.count]) \(things[number % things.count])"
            let price = Cents(99 + random.next() % 49_901)
            let stock = random.next() % 20 == 0 ? 0 : Int(random.next() % 501)
            let digits = String(number)
            let sku = "SKU-" + String(repeating: "0", count: 5 - digits.count) + digits
            products.append(Product(sku: sku, name: name, priceCents: price, stock: stock))
        }
        return Catalog(products: products)
    }()
}
