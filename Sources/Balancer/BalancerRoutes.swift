import Hummingbird
import HTTPAPI
import NIOCore

/// Everything but the balancer's own routes goes to a backend.
public struct ProxyMiddleware<Context: RequestContext>: RouterMiddleware {
    let balancer: Balancer
    static var bodyBytesMax: Int { 1 << 20 }

    public init(balancer: Balancer) { self.balancer = balancer }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        if path == "/balancer" || path == "/metrics" || path.hasPrefix("/health/") {
            return try await next(request, context)
        }
        let body = try await request.body.collect(upTo: Self.bodyBytesMax)
        let target = request.uri.query.map { "\(path)?\($0)" } ?? path
        return await balancer.forward(
            method: request.method, path: target, contentType: request.headers[.contentType], body: body.readableBytes > 0 ? body : nil)
    }
}

public struct BalancerRoutes: Sendable {
    let balancer: Balancer

    public init(balancer: Balancer) { self.balancer = balancer }

    struct View: Encodable {
        let strategy: String
        let backends: [Balancer.BackendStatus]
    }

    public func register(on router: Router<some RequestContext>) {
        router.get("balancer") { _, _ in
            JSONResponse.make(status: .ok, View(strategy: balancer.config.strategy.rawValue, backends: balancer.status()))
        }
    }
}
