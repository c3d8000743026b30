import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Prometheus
import ServiceLifecycle

/// The balancer's HTTP front: a reverse proxy that moves bytes between
/// SwiftNIO channels on one event loop (like nginx's single worker). It
/// reads only what it must of HTTP (`HTTPFraming`: where a request or an
/// answer ends, the request line, the hop-by-hop headers), sends the request
/// on a kept-alive connection to the chosen backend, and writes the
/// backend's answer back as it came. `/balancer`, `/metrics` and
/// `/health/*` are answered here.
public final class ProxyServer: Service, Sendable {
    let balancer: Balancer
    let host: String
    let port: Int
    let registry: PrometheusCollectorRegistry
    let logger: Logger
    let onBound: @Sendable (SocketAddress) -> Void
    /// HTTPS for the balancer's clients (`--tls-cert`, `--tls-key`).
    let tls: TLSConfiguration?
    static let requestBodyBytesMax = 1 << 20

    public init(
        balancer: Balancer, host: String, port: Int, registry: PrometheusCollectorRegistry, tls: TLSConfiguration? = nil, logger: Logger,
        onBound: @escaping @Sendable (SocketAddress) -> Void
    ) {
        self.tls = tls
        self.balancer = balancer
        self.host = host
        self.port = port
        self.registry = registry
        self.logger = logger
        self.onBound = onBound
    }

    public func run() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let server: any Channel
        let connections: BackendConnections
        let front: NIOSSLContext?
        do {
            connections = BackendConnections(
                loop: loop, tls: try balancer.config.backendTLS.map { try NIOSSLContext(configuration: $0) }, logger: logger)
            front = try tls.map { try NIOSSLContext(configuration: $0) }
            server = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { [self] channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let front { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: front)) }
                        // A client that sends nothing for a minute, with nothing
                        // of its own in flight, loses its connection.
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .seconds(60)))
                        try channel.pipeline.syncOperations.addHandler(ProxyFrontHandler(server: self, connections: connections))
                    }
                }
                .bind(host: host, port: port).get()
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        if let address = server.localAddress { onBound(address) }
        try? await gracefulShutdown()
        try? await server.close()
        try? await loop.submit { connections.closeAll() }.get()
        try? await group.shutdownGracefully()
    }

    /// The routes the balancer answers itself (`ownAnswer`), as
    /// `METHOD /path`; it proxies every other request.
    public static let ownRoutes: Set<String> = ["GET /balancer", "GET /health/live", "GET /health/ready", "GET /metrics"]

    /// The paths of `ownRoutes`: only GET is served on them.
    static let ownPaths = Set(ownRoutes.map { String($0.split(separator: " ")[1]) })

    /// What the balancer answers itself, or nil to proxy.
    func ownAnswer(_ request: ProxyRequest, connections: BackendConnections) -> ProxyResponse? {
        guard request.method == "GET" else {
            guard Self.ownPaths.contains(String(request.path)) else { return nil }
            return .error(405, "method_not_allowed", "\(request.path) allows GET", headers: ["Allow": "GET"])
        }
        switch request.path {
        case "/balancer":
            return .json(200, BalancerView(strategy: balancer.config.strategy.rawValue, pipelined: connections.pipelined, backends: balancer.status()))
        case "/health/live":
            return .json(200, ["status": "live"])
        case "/health/ready":
            return .json(200, ["status": "ready"])
        case "/metrics":
            var bytes: [UInt8] = []
            registry.emit(into: &bytes)
            return .make(200, contentType: "text/plain; version=0.0.4", body: ByteBuffer(bytes: bytes))
        default:
            return nil
        }
    }
}

/// GET /balancer.
struct BalancerView: Encodable {
    let strategy: String
    /// Requests that shared a backend connection with one in flight.
    let pipelined: Int
    let backends: [Balancer.BackendStatus]
}
