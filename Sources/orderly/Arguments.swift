import ArgumentParser
import EventLog
import NIOCore
import OrderDomain

/// `host:port`; port 0 asks the system for a free port.
struct HostPort: ExpressibleByArgument, CustomStringConvertible, Sendable {
    let host: String
    let port: Int

    init?(argument: String) {
        guard let colon = argument.lastIndex(of: ":") else { return nil }
        var host = String(argument[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(argument[argument.index(after: colon)...]), (0...65535).contains(port) else {
            return nil
        }
        self.host = host
        self.port = port
    }

    var description: String { "\(host):\(port)" }
    static var defaultCompletionKind: CompletionKind { .default }
}

/// A duration such as `10s`, `250ms`, `2m`; a bare number means seconds.
struct DurationArgument: ExpressibleByArgument, Sendable {
    let duration: Duration

    init?(argument: String) {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        var number = Substring(argument)
        var scale = 1.0
        for (suffix, factor) in units where argument.hasSuffix(suffix) {
            number = argument.dropLast(suffix.count)
            scale = factor
            break
        }
        guard let value = Double(number), value >= 0, value.isFinite else { return nil }
        duration = .milliseconds(Int64((value * scale * 1000).rounded()))
    }

    var milliseconds: Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

extension DurationArgument: CustomStringConvertible {
    /// As it would be typed: "750ms", "1.5s", "10s" (help shows defaults so).
    var description: String {
        let ms = milliseconds
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        return ms < 1000 ? "\(ms)ms" : "\(Double(ms) / 1000)s"
    }
}

extension Durability: ExpressibleByArgument {}

/// Node ids follow the client id pattern, so they are safe as folder names.
func validateNodeID(_ id: String) throws {
    guard ClientID.isValid(id), id != ".", id != ".." else {
        throw ValidationError("node id '\(id)' must be 1-64 characters of A-Z a-z 0-9 . _ - (and not . or ..)")
    }
}

/// `--event-loops` for each of `nodes` API nodes started on this machine:
/// its cores shared out, at least one each. Three nodes on two cores ran
/// about 15% more commands a second with one loop each than with two
/// (fewer threads contending for the cores, fewer hand-offs between them).
func eventLoopsPerNode(sharing nodes: Int) -> Int {
    max(1, System.coreCount / max(1, nodes))
}
