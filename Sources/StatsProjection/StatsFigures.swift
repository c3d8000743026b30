/// Per product: units of orders placed, paid, shipped, and of cancelled
/// orders whose money went back; revenue of paid and shipped orders.
public struct ProductFigures: Sendable, Equatable {
    public var unitsOrdered: Int64 = 0
    public var unitsPaid: Int64 = 0
    public var unitsShipped: Int64 = 0
    public var unitsRefunded: Int64 = 0
    public var revenueCents: Int64 = 0

    public init(unitsOrdered: Int64 = 0, unitsPaid: Int64 = 0, unitsShipped: Int64 = 0, unitsRefunded: Int64 = 0, revenueCents: Int64 = 0) {
        self.unitsOrdered = unitsOrdered
        self.unitsPaid = unitsPaid
        self.unitsShipped = unitsShipped
        self.unitsRefunded = unitsRefunded
        self.revenueCents = revenueCents
    }

    public var isZero: Bool { self == ProductFigures() }

    mutating func add(_ other: ProductFigures, sign: Int64) {
        unitsOrdered &+= sign &* other.unitsOrdered
        unitsPaid &+= sign &* other.unitsPaid
        unitsShipped &+= sign &* other.unitsShipped
        unitsRefunded &+= sign &* other.unitsRefunded
        revenueCents &+= sign &* other.revenueCents
    }
}

/// Per minute (of the time an order was placed, or became paid).
public struct MinuteFigures: Sendable, Equatable {
    public var ordersPlaced: Int64 = 0
    public var ordersPaid: Int64 = 0
    public var revenueCents: Int64 = 0

    public init(ordersPlaced: Int64 = 0, ordersPaid: Int64 = 0, revenueCents: Int64 = 0) {
        self.ordersPlaced = ordersPlaced
        self.ordersPaid = ordersPaid
        self.revenueCents = revenueCents
    }

    public var isZero: Bool { self == MinuteFigures() }
}

/// The whole projection, or a change to it (figures that may be negative).
/// Entries that sum to zero are removed, so equal projections compare equal.
public struct StatsTotals: Sendable, Equatable {
    public var products: [String: ProductFigures] = [:]
    /// Orders by current status (placed, paid, shipped, cancelled).
    public var statuses: [String: Int64] = [:]
    public var minutes: [Int64: MinuteFigures] = [:]

    public init() {}

    public var revenueCents: Int64 { products.values.reduce(0) { $0 &+ $1.revenueCents } }

    public mutating func add(_ contribution: OrderContribution, sign: Int64 = 1) {
        for (sku, figures) in contribution.products {
            products[sku, default: ProductFigures()].add(figures, sign: sign)
            if products[sku]!.isZero { products[sku] = nil }
        }
        if let status = contribution.status {
            statuses[status, default: 0] &+= sign
            if statuses[status] == 0 { statuses[status] = nil }
        }
        if let minute = contribution.placedMinute {
            minutes[minute, default: MinuteFigures()].ordersPlaced &+= sign
            if minutes[minute]!.isZero { minutes[minute] = nil }
        }
        if let minute = contribution.paidMinute {
            minutes[minute, default: MinuteFigures()].ordersPaid &+= sign
            minutes[minute, default: MinuteFigures()].revenueCents &+= sign &* contribution.revenueCents
            if minutes[minute]!.isZero { minutes[minute] = nil }
        }
    }

    public mutating func add(_ other: StatsTotals) {
        for (sku, figures) in other.products {
            products[sku, default: ProductFigures()].add(figures, sign: 1)
            if products[sku]!.isZero { products[sku] = nil }
        }
        for (status, count) in other.statuses {
            statuses[status, default: 0] &+= count
            if statuses[status] == 0 { statuses[status] = nil }
        }
        for (minute, figures) in other.minutes {
            var merged = minutes[minute, default: MinuteFigures()]
            merged.ordersPlaced &+= figures.ordersPlaced
            merged.ordersPaid &+= figures.ordersPaid
            merged.revenueCents &+= figures.revenueCents
            minutes[minute] = merged.isZero ? nil : merged
        }
    }
}
