import HTTPAPI
import Node
import Hummingbird
import OrderDomain
import StatsProjection

/// `/stats/summary`, `/stats/products`, `/stats/products/{sku}`. Every
/// answer states the log positions it reflects and how far behind the
/// origins' ends they are.
public struct StatsRoutes: Sendable {
    let store: StatsStore
    let follower: LogTail?
    let catalog: Catalog
    let rebuild: OnlineRebuild?
    let admin: AdminToken

    public init(store: StatsStore, follower: LogTail?, rebuild: OnlineRebuild? = nil, adminToken: String? = nil, catalog: Catalog = .standard) {
        self.store = store
        self.follower = follower
        self.rebuild = rebuild
        self.admin = AdminToken(adminToken)
        self.catalog = catalog
    }

    struct RebuildView: Encodable {
        let phase: String
        let detail: String?
        let started_at_ms: Int64?
        let finished_at_ms: Int64?
    }

    static func view(_ rebuild: OnlineRebuild) async -> RebuildView {
        RebuildView(
            phase: await rebuild.phase.rawValue, detail: await rebuild.detail,
            started_at_ms: await rebuild.startedAtMs, finished_at_ms: await rebuild.finishedAtMs)
    }

    public static let limitMax = 10_000

    struct ProductView: Encodable {
        let sku: String
        let units_ordered: Int64
        let units_paid: Int64
        let units_shipped: Int64
        let units_refunded: Int64
        let revenue_cents: Int64

        init(sku: String, _ figures: ProductFigures) {
            self.sku = sku
            units_ordered = figures.unitsOrdered
            units_paid = figures.unitsPaid
            units_shipped = figures.unitsShipped
            units_refunded = figures.unitsRefunded
            revenue_cents = figures.revenueCents
        }
    }

    struct Orders: Encodable {
        let placed: Int64
        let paid: Int64
        let shipped: Int64
        let cancelled: Int64
    }

    struct SummaryView: Encodable {
        let orders: Orders
        let revenue_cents: Int64
        let events_counted: Int64
        let top_products: [ProductView]
        let positions: [String: Int64]
        let lag_events: Int64
        let lag: [String: Int64]
    }

    struct ProductsView: Encodable {
        let products: [ProductView]
        let sort: String
        let positions: [String: Int64]
        let lag_events: Int64
    }

    struct OneProductView: Encodable {
        let product: ProductView
        let name: String
        let positions: [String: Int64]
        let lag_events: Int64
    }

    /// The positions the answer reflects, and per origin how far behind
    /// the origin's end they are.
    func reflected() async throws -> (positions: [String: Int64], lag: [String: Int64]) {
        let positions = try await store.positions()
        var lag: [String: Int64] = [:]
        for (origin, end) in follower?.originEnds ?? [:] { lag[origin] = max(0, end - (positions[origin] ?? 0)) }
        return (positions, lag)
    }

    public func register(on router: Router<some RequestContext>) {
        if let rebuild {
            // Rebuild into a shadow while serving; swapped in once caught up.
            router.post("admin/stats/rebuild") { request, _ in
                if let refusal = admin.refusal(for: request) { return refusal.response() }
                guard await rebuild.start() else {
                    return APIError(.conflict, "rebuild_running", "a rebuild is already running").response()
                }
                return JSONResponse.make(status: .accepted, await Self.view(rebuild))
            }
            router.get("admin/stats/rebuild") { _, _ in JSONResponse.make(status: .ok, await Self.view(rebuild)) }
        }
        router.get("stats/summary") { _, _ in
            let totals = try await store.totals()
            let (positions, lag) = try await reflected()
            let top = try await store.products(sort: .revenue, limit: 10).map { ProductView(sku: $0.sku, $0.figures) }
            let view = SummaryView(
                orders: Orders(
                    placed: totals.statuses["placed"] ?? 0, paid: totals.statuses["paid"] ?? 0,
                    shipped: totals.statuses["shipped"] ?? 0, cancelled: totals.statuses["cancelled"] ?? 0),
                revenue_cents: totals.revenueCents, events_counted: try await store.eventsCounted(), top_products: top,
                positions: positions, lag_events: lag.values.reduce(0, +), lag: lag)
            return JSONResponse.make(status: .ok, view)
        }
        router.get("stats/products") { request, _ in
            let sortText = request.uri.queryParameters.get("sort").map { String($0) } ?? "revenue"
            guard let sort = ProductSort(query: sortText) else {
                return APIError.badRequest("invalid_sort", "sort must be revenue, units_ordered, units_paid, units_shipped or sku").response()
            }
            let limitText = request.uri.queryParameters.get("limit").map { String($0) } ?? "20"
            guard let limit = Int(limitText), (1...Self.limitMax).contains(limit) else {
                return APIError.badRequest("invalid_limit", "limit must be 1-\(Self.limitMax)").response()
            }
            let products = try await store.products(sort: sort, limit: limit).map { ProductView(sku: $0.sku, $0.figures) }
            let (positions, lag) = try await reflected()
            return JSONResponse.make(status: .ok, ProductsView(products: products, sort: sortText, positions: positions, lag_events: lag.values.reduce(0, +)))
        }
        router.get("stats/products/:sku") { _, context in
            let sku = context.parameters.get("sku") ?? ""
            guard let product = catalog.product(sku: sku) else {
                return APIError(.notFound, "not_found", "no product with sku '\(sku)'").response()
            }
            let figures = try await store.product(sku)
            let (positions, lag) = try await reflected()
            return JSONResponse.make(
                status: .ok,
                OneProductView(product: ProductView(sku: sku, figures), name: product.name, positions: positions, lag_events: lag.values.reduce(0, +)))
        }
    }
}
