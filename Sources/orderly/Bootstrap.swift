import ArgumentParser
import HTTPAPI
import Hummingbird
import HummingbirdTLS
import NIOSSL
import ServiceLifecycle
import Foundation
import Logging
import Metrics
import Prometheus

/// Process-wide logging (to stderr: stdout carries the ready record) and
/// metrics (Prometheus). Called once, first thing in a role's `run`.
enum Bootstrap {
    static func logging(level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }

    static func metrics() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }

    /// One line of JSON on stdout, written unbuffered so a parent sees it at once.
    static func printReady(_ fields: [(String, Any)]) {
        let body = fields.map { key, value -> String in
            switch value {
            case let text as String: return "\"\(key)\":\"\(text)\""
            case let flag as Bool: return "\"\(key)\":\(flag)"
            default: return "\"\(key)\":\(value)"
            }
        }.joined(separator: ",")
        FileHandle.standardOutput.write(Data("{\(body)}\n".utf8))
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Serving a role that is not an API node (stats, warehouse, balancer): its
/// router, health and metrics, the ready record once it serves, and its
/// services run until SIGTERM or SIGINT (in the order given; the HTTP server
/// last, so it stops first).
enum RoleServer {
    static func run(
        role: String, id: String, http: HostPort, router: Router<BasicRequestContext>, registry: PrometheusCollectorRegistry,
        tls: TLSConfiguration? = nil, ready: @escaping @Sendable () -> Bool, services: [any Service], logger: Logger
    ) async throws {
        APIServer.addHealthAndMetrics(to: router, registry: registry, ready: ready)
        let https = tls != nil
        let app = Application(
            router: router,
            server: try tls.map { try .tls(.http1(), tlsConfiguration: $0) } ?? .http1(),
            configuration: .init(address: .hostname(http.host, port: http.port), serverName: "orderly-\(id)"),
            onServerRunning: { channel in
                let address = channel.localAddress
                Bootstrap.printReady([
                    ("ready", true), ("role", role), ("id", id),
                    ("http", "\(address?.ipAddress ?? "127.0.0.1"):\(address?.port ?? 0)"),
                    ("tls", https),
                    ("pid", Int(ProcessInfo.processInfo.processIdentifier)),
                ])
            },
            logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: (services + [app]).map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
