import Foundation
import Hummingbird
import Logging
import Node
import Prometheus
import Wire

/// Builds the api node's HTTP application: order routes, health, metrics.
public enum APIServer {
    public static func router(
        service: any OrderService, membership: ClusterMembership? = nil, replicator: Replicator? = nil, adminToken: String? = nil,
        feeds: FeedSource? = nil, feedKeepAlive: Duration = .seconds(10), protocols: HandshakeConfig? = nil, registry: PrometheusCollectorRegistry
    ) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: RequestMetricsMiddleware())
        OrderRoutes(service: service).register(on: router)
        let notReady: @Sendable () -> String? = {
            guard let membership else { return nil }
            if let reason = membership.outOfService { return reason }
            if !membership.joined { return "joining" }
            // Until every live peer has seen it alive, a node leads none of
            // its orders: it would refuse them, so it is not ready yet.
            return membership.settled ? nil : settlingReason
        }
        // A node that is not ready (joining, recovering its log) cannot
        // read the cluster's logs: its feed clients go to another.
        if let feeds { EventRoutes(feeds: feeds, keepAlive: feedKeepAlive, notReady: { notReady() ?? replicator?.recovering }).register(on: router) }
        if let membership {
            ClusterRoutes(membership: membership, replicator: replicator, protocols: protocols).register(on: router)
            AdminRoutes(membership: membership, token: adminToken).register(on: router)
        }
        addHealthAndMetrics(to: router, registry: registry, notReady: notReady)
        return router
    }

    static let settlingReason = "not every live peer has seen this node alive yet; it leads no order until then"

    /// `/health/live`, `/health/ready`, `/metrics` (Prometheus text) and
    /// `/openapi.yaml`.
    /// `ready` says whether the node serves; a node still joining its
    /// cluster answers 503 so a balancer sends it nothing yet.
    public static func addHealthAndMetrics(
        to router: Router<BasicRequestContext>, registry: PrometheusCollectorRegistry, ready: @escaping @Sendable () -> Bool = { true }
    ) {
        addHealthAndMetrics(to: router, registry: registry) { ready() ? nil : "joining" }
    }

    /// The same, where `notReady` says why the node does not serve (nil:
    /// it does): `/health/ready` answers 503 with `{"status","reason"}`.
    public static func addHealthAndMetrics(
        to router: Router<BasicRequestContext>, registry: PrometheusCollectorRegistry, notReady: @escaping @Sendable () -> String?
    ) {
        router.get("health/live") { _, _ in JSONResponse.make(status: .ok, json: .object([("status", .string("live"))])) }
        router.get("health/ready") { _, _ in
            guard let reason = notReady() else { return JSONResponse.make(status: .ok, json: .object([("status", .string("ready"))])) }
            let status = reason == "joining" ? "joining" : reason == settlingReason ? "settling" : "out_of_service"
            return JSONResponse.make(status: .serviceUnavailable, json: .object([("reason", .string(reason)), ("status", .string(status))]))
        }
        OpenAPI.addRoute(to: router)
        router.get("metrics") { _, _ in
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: buffer)))
        }
        // Last: it answers from the routes the router has now.
        router.add(middleware: RouteNotFoundMiddleware.on(router))
    }
}
