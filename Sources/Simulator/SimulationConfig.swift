/// A failure to inject at a time of the run: `kill api-2@10s`.
public struct FailureEvent: Sendable, Equatable, CustomStringConvertible {
    public enum Action: String, Sendable, CaseIterable {
        case kill, stop, cont, term, start
    }

    public let action: Action
    public let node: String
    public let atMs: Int64

    public init(action: Action, node: String, atMs: Int64) {
        self.action = action
        self.node = node
        self.atMs = atMs
    }

    public var description: String { "\(action.rawValue) \(node)@\(Double(atMs) / 1000)s" }

    /// "kill api-2@10s,start api-2@20s" (times as 10s, 500ms or seconds).
    public static func parse(_ text: String) throws(SimulationError) -> [FailureEvent] {
        var events: [FailureEvent] = []
        for item in text.split(separator: ",") {
            let parts = item.trimmingCharacters(in: .whitespaces).split(separator: "@")
            let words = parts.first?.split(separator: " ") ?? []
            guard parts.count == 2, words.count == 2, let action = Action(rawValue: String(words[0])) else {
                throw SimulationError("failure '\(item)' is not ACTION NODE@TIME, with ACTION one of \(Action.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard let atMs = milliseconds(String(parts[1])) else { throw SimulationError("failure '\(item)': time '\(parts[1])' is not like 10s or 500ms") }
            events.append(FailureEvent(action: action, node: String(words[1]), atMs: atMs))
        }
        return events.sorted { $0.atMs < $1.atMs }
    }

    static func milliseconds(_ text: String) -> Int64? {
        if text.hasSuffix("ms"), let value = Double(text.dropLast(2)), value >= 0 { return Int64(value) }
        if text.hasSuffix("s"), let value = Double(text.dropLast()), value >= 0 { return Int64(value * 1000) }
        if let value = Double(text), value >= 0 { return Int64(value * 1000) }
        return nil
    }
}

public struct SimulationError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One phase of load: open-loop arrivals of customers at `rate` per second.
public struct SimulationConfig: Sendable {
    /// Base URL of the balancer (or an API node), e.g. http://127.0.0.1:8080.
    public var target: String
    public var rate: Double
    public var durationMs: Int64
    public var failures: [FailureEvent] = []
    public var phase = "run"
    /// Shares of customers who pay before they order, pay twice (a retry
    /// with the same payment id), or cancel instead of paying.
    public var payFirstShare = 0.1
    public var duplicatePaymentShare = 0.1
    public var cancelShare = 0.05
    public var seed: UInt64 = 1
    /// Prefix of the order ids (unique per run).
    public var runID: String

    public init(target: String, rate: Double, durationMs: Int64, runID: String) {
        self.target = target
        self.rate = rate
        self.durationMs = durationMs
        self.runID = runID
    }
}
