import ArgumentParser
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
