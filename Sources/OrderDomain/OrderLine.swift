/// A line as the client asks for it: which product and how many.
public struct OrderLineRequest: Sendable, Equatable, Codable {
    public let sku: String
    public let qty: Int

    public init(sku: String, qty: Int) {
        self.sku = sku
        self.qty = qty
    }
}

/// A line as recorded: the unit price is fixed from the catalog when the
/// order is placed, so a later price change does not alter the order.
public struct OrderLine: Sendable, Equatable, Codable {
    public let sku: String
    public let qty: Int
    public let unitPriceCents: Cents

    public init(sku: String, qty: Int, unitPriceCents: Cents) {
        self.sku = sku
        self.qty = qty
        self.unitPriceCents = unitPriceCents
    }

    /// Saturates rather than traps: lines decoded from a log are not trusted.
    public var lineTotalCents: Cents { Cents(qty).multipliedSaturating(by: unitPriceCents) }
}
