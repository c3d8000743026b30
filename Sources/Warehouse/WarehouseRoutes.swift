import Foundation
import HTTPAPI
import Hummingbird
import Node
import OrderDomain

/// `/wms/summary`, `/wms/orders/{id}`, `/wms/stock/{sku}`, and
/// `POST /admin/wms/stock/{sku}` (restock; admin token).
public struct WarehouseRoutes: Sendable {
    let store: WarehouseStore
    let tail: LogTail
    let admin: AdminToken

    public init(store: WarehouseStore, tail: LogTail, adminToken: String? = nil) {
        self.store = store
        self.tail = tail
        self.admin = AdminToken(adminToken)
    }

    static let restockUnitsMax = 1_000_000

    struct Restock: Decodable { let units: Int }

    struct RestockView: Encodable {
        let sku: String
        let on_hand: Int
        let released_backorders: Int
    }

    struct Summary: Encodable {
        let orders: [String: Int]
        let positions: [String: Int64]
        let lag_events: Int64
    }

    struct OrderView: Encodable {
        let id: String
        let state: String
        let shipment_id: String?
        let detail: String?
    }

    struct StockView: Encodable {
        let sku: String
        let on_hand: Int
    }

    public func register(on router: Router<some RequestContext>) {
        router.get("wms/summary") { _, _ in
            let positions = try await store.positions()
            let lag = tail.originEnds.reduce(Int64(0)) { $0 + max(0, $1.value - (positions[$1.key] ?? 0)) }
            return JSONResponse.make(status: .ok, Summary(orders: try await store.counts(), positions: positions, lag_events: lag))
        }
        router.get("wms/orders/:id") { _, context in
            guard let id = context.parameters.get("id").flatMap(ClientID.init) else {
                return APIError.badRequest("invalid_id", "order id must be 1-64 characters of A-Z a-z 0-9 . _ -").response()
            }
            guard let order = try await store.order(id.rawValue) else {
                return APIError(.notFound, "not_found", "the warehouse has not seen order \(id)").response()
            }
            return JSONResponse.make(status: .ok, OrderView(id: id.rawValue, state: order.state, shipment_id: order.shipmentID, detail: order.detail))
        }
        // Goods received: {"units": N}. Backordered orders that need the SKU
        // are tried again.
        router.post("admin/wms/stock/:sku") { request, context in
            if let refusal = admin.refusal(for: request) { return refusal.response() }
            let sku = context.parameters.get("sku") ?? ""
            let body: ByteBuffer
            do throws(APIError) {
                body = try await request.collectBody(upTo: 4096)
            } catch {
                return error.response()
            }
            let data = Data(body.readableBytesView)
            guard (try? JSONSerialization.jsonObject(with: data)) is [String: Any] else {
                return APIError.badRequest("malformed_json", "the body must be a JSON object like {\"units\": 10}").response()
            }
            guard let units = (try? JSONDecoder().decode(Restock.self, from: data))?.units, (1...Self.restockUnitsMax).contains(units) else {
                return APIError.badRequest("invalid_units", "units must be an integer from 1 to \(Self.restockUnitsMax)").response()
            }
            guard let (onHand, released) = try await store.restock(sku, units: units) else {
                return APIError(.notFound, "not_found", "no product with sku '\(sku)'").response()
            }
            return JSONResponse.make(status: .ok, RestockView(sku: sku, on_hand: onHand, released_backorders: released))
        }
        router.get("wms/stock/:sku") { _, context in
            let sku = context.parameters.get("sku") ?? ""
            guard let onHand = try await store.stock(sku) else {
                return APIError(.notFound, "not_found", "no product with sku '\(sku)'").response()
            }
            return JSONResponse.make(status: .ok, StockView(sku: sku, on_hand: onHand))
        }
    }
}
