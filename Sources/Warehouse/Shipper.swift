import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import NIOCore
import Node
import ServiceLifecycle

/// Ships paid orders: reserves stock once an order's handling time is over,
/// then records each reserved shipment through the API
/// (`POST /orders/{id}/shipments`, idempotent by shipment id), retrying the
/// same shipment until the API answers for it.
public final class Shipper: Service, Sendable {
    private let store: WarehouseStore
    private let tail: LogTail
    private let handlingMs: Int64
    private let logger: Logger
    private let interval: Duration = .milliseconds(100)
    private let shippedCounter = Counter(label: "orderly_wms_shipments_total")
    private let client: HTTPClient
    /// http, or https when the API nodes serve it (`--tls-ca`).
    private let scheme: String

    public init(store: WarehouseStore, tail: LogTail, handlingMs: Int64, client: HTTPClient = .shared, scheme: String = "http", logger: Logger) {
        self.store = store
        self.tail = tail
        self.handlingMs = handlingMs
        self.client = client
        self.scheme = scheme
        self.logger = logger
    }

    public func run() async throws {
        var turn = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                _ = try await store.reserveDue(handlingMs: handlingMs)
                for shipment in try await store.reserved() {
                    // The addresses as the tail knows them now, not at the
                    // round's start: a round after a backlog is long, and
                    // one that kept a restarted node's old address spent
                    // 5 s (the request's deadline) on it for every third
                    // shipment, for the rest of the round.
                    let nodes = tail.apiAddresses
                    guard !nodes.isEmpty else { break }
                    // One node after another (the count stepped by two
                    // before, so with two nodes every shipment went to one).
                    turn += 1
                    await record(shipment, via: nodes[turn % nodes.count])
                }
            } catch {
                logger.warning("shipping round failed", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: interval)
        }
    }

    private func record(_ shipment: (orderID: String, shipmentID: String), via node: String) async {
        var request = HTTPClientRequest(url: "\(scheme)://\(node)/orders/\(shipment.orderID)/shipments")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: #"{"id":"\#(shipment.shipmentID)"}"#))
        do {
            let response = try await client.execute(request, timeout: .seconds(5))
            let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
            switch response.status.code {
            case 200, 201:
                try await store.shipped(shipment.orderID)
                shippedCounter.increment()
                logger.info("shipped", metadata: ["order": "\(shipment.orderID)", "shipment": "\(shipment.shipmentID)"])
            case 409 where body.contains("\"order_cancelled\""):
                try await store.refused(shipment.orderID, becomes: .cancelled, detail: "cancelled before it shipped")
            case 409 where body.contains("\"shipment_id_reused\""):
                try await store.refused(shipment.orderID, becomes: .shipped, detail: "shipped under another shipment id")
            default:
                // Not paid yet on this node's view, leader away, ...: the same
                // shipment is tried again next round.
                logger.debug("shipment not recorded yet", metadata: ["order": "\(shipment.orderID)", "status": "\(response.status.code)"])
            }
        } catch {
            logger.debug("shipment not recorded yet", metadata: ["order": "\(shipment.orderID)", "error": "\(error)"])
        }
    }
}
