import Foundation
import Histogram

/// One phase's results, for the report.
public struct PhaseResult: Sendable {
    public let name: String
    public let rate: Double
    public let outcome: Simulation.Outcome

    public init(name: String, rate: Double, outcome: Simulation.Outcome) {
        self.name = name
        self.rate = rate
        self.outcome = outcome
    }

    var records: [RequestRecord] { outcome.records }
    var seconds: Double { Double(outcome.durationMs) / 1000 }
}

/// Percentiles of latencies (ms), from an HdrHistogram.
struct Percentiles {
    var histogram = Histogram<UInt64>(highestTrackableValue: 3_600_000, numberOfSignificantValueDigits: .three)
    init(_ latencies: some Sequence<Int64>) {
        for value in latencies { _ = histogram.record(UInt64(Swift.max(0, value))) }
    }
    var count: Int { Int(histogram.totalCount) }
    func at(_ percentile: Double) -> Int64 { count == 0 ? 0 : Int64(histogram.valueAtPercentile(percentile)) }
    var max: Int64 { count == 0 ? 0 : Int64(histogram.max) }
}

/// Writes `index.html` (self-contained, SVG charts), `summary.json` and
/// `requests.csv` into a folder.
public enum Report {
    public static func write(phases: [PhaseResult], verdict: Checker.Verdict, to folder: String, title: String) throws -> String {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let summary = summaryJSON(phases: phases, verdict: verdict)
        try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys])
            .write(to: URL(fileURLWithPath: (folder as NSString).appendingPathComponent("summary.json")))
        var csv = "phase,operation,order_id,intended_ms,end_ms,latency_ms,status,attempts,error\n"
        for phase in phases {
            for record in phase.records.sorted(by: { $0.intendedMs < $1.intendedMs }) {
                csv += "\(record.phase),\(record.operation),\(record.orderID),\(record.intendedMs),\(record.endMs),\(record.latencyMs),\(record.status),\(record.attempts),\(record.error ?? "")\n"
            }
        }
        try csv.write(toFile: (folder as NSString).appendingPathComponent("requests.csv"), atomically: true, encoding: .utf8)
        let html = page(phases: phases, verdict: verdict, title: title)
        let index = (folder as NSString).appendingPathComponent("index.html")
        try html.write(toFile: index, atomically: true, encoding: .utf8)
        return index
    }

    static let operations = ["place", "pay", "pay_early", "pay_again", "cancel", "status"]

    static func summaryJSON(phases: [PhaseResult], verdict: Checker.Verdict) -> [String: Any] {
        var list: [[String: Any]] = []
        for phase in phases {
            var latency: [String: Any] = [:]
            for operation in operations {
                let values = phase.records.filter { $0.operation == operation && $0.ok }.map(\.latencyMs)
                guard !values.isEmpty else { continue }
                let p = Percentiles(values)
                latency[operation] = ["count": p.count, "p50": p.at(50), "p90": p.at(90), "p99": p.at(99), "p999": p.at(99.9), "max": p.max]
            }
            let all = Percentiles(phase.records.filter(\.ok).map(\.latencyMs))
            latency["all"] = ["count": all.count, "p50": all.at(50), "p90": all.at(90), "p99": all.at(99), "p999": all.at(99.9), "max": all.max]
            var errors: [String: Int] = [:]
            for record in phase.records { if let error = record.error { errors[error, default: 0] += 1 } }
            var entry: [String: Any] = [:]
            entry["name"] = phase.name
            entry["rate"] = phase.rate
            entry["duration_s"] = (phase.seconds * 10).rounded() / 10
            entry["requests"] = phase.records.count
            entry["ok"] = phase.records.filter(\.ok).count
            let throughput: Double = Double(phase.records.count) / max(phase.seconds, 0.001)
            entry["throughput_rps"] = (throughput * 10).rounded() / 10
            entry["retried"] = phase.records.filter { $0.attempts > 1 }.count
            entry["latency_ms"] = latency
            entry["errors"] = errors
            entry["failures"] = phase.outcome.failures.map { failure -> [String: Any] in
                ["event": failure.event.description, "at_s": Double(failure.atMs) / 1000, "error": failure.error ?? NSNull()]
            }
            list.append(entry)
        }
        return [
            "phases": list,
            "checker": [
                "passed": verdict.passed, "violations": verdict.violations, "orders_checked": verdict.ordersChecked,
                "payments_checked": verdict.paymentsChecked, "shipped": verdict.shipped,
            ] as [String: Any],
        ]
    }

    // MARK: HTML

    static func page(phases: [PhaseResult], verdict: Checker.Verdict, title: String) -> String {
        let columns = phases.map { phase -> String in
            let ok = phase.records.filter(\.ok)
            let all = Percentiles(ok.map(\.latencyMs))
            let errors = phase.records.count - ok.count
            return """
                <div class="phase">
                <h2>\(escape(phase.name))</h2>
                <p class="facts">\(phase.records.count) requests in \(String(format: "%.1f", phase.seconds)) s
                (\(String(format: "%.0f", Double(phase.records.count) / max(phase.seconds, 0.001))) req/s, \(String(format: "%.0f", phase.rate)) customers/s);
                p50 \(all.at(50)) ms, p99 \(all.at(99)) ms, max \(all.max) ms; \(errors) error(s)\(phase.outcome.failures.isEmpty ? "" : "; failures: " + phase.outcome.failures.map { escape($0.event.description) }.joined(separator: ", "))</p>
                <h3>Latency histogram</h3>\(histogram(ok))
                <h3>Latency buckets</h3>\(pie(ok))
                <h3>Latency per operation (box: p25–p75, line: p50, whiskers: p1–p99)</h3>\(boxPlot(ok))
                <h3>Latency percentiles and throughput over time</h3>\(timeline(phase))
                <h3>Errors over time</h3>\(errorsChart(phase))
                </div>
                """
        }.joined(separator: "\n")
        let verdictText = verdict.passed
            ? "<p class=\"pass\">Checker passed: \(verdict.ordersChecked) acknowledged orders and \(verdict.paymentsChecked) payments present as acknowledged; \(verdict.shipped) paid orders shipped once; stats totals equal the orders'.</p>"
            : "<p class=\"fail\">Checker FAILED (\(verdict.violations.count) violation(s)):</p><ul>" + verdict.violations.prefix(50).map { "<li>\(escape($0))</li>" }.joined() + "</ul>"
        return """
            <!doctype html>
            <html><head><meta charset="utf-8"><title>\(escape(title))</title>
            <style>
            body { font: 14px -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
            .phases { display: flex; gap: 32px; flex-wrap: wrap; }
            .phase { flex: 1 1 560px; max-width: 720px; }
            h2 { border-bottom: 1px solid #ccc; padding-bottom: 4px; }
            h3 { font-size: 14px; margin: 18px 0 4px; color: #444; }
            .facts { color: #555; }
            .pass { color: #176f2c; font-weight: 600; }
            .fail { color: #b00020; font-weight: 600; }
            svg text { font-size: 11px; fill: #333; }
            </style></head><body>
            <h1>\(escape(title))</h1>
            \(verdictText)
            <div class="phases">
            \(columns)
            </div>
            <p class="facts">Latency is measured from each request's intended send time (open-loop arrivals), so queueing is not hidden.
            Files: summary.json, requests.csv.</p>
            </body></html>
            """
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    static let width = 640.0
    static let height = 220.0
    static let colors = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"]

    static func histogram(_ records: [RequestRecord]) -> String {
        let edges: [Int64] = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]
        var counts = Array(repeating: 0, count: edges.count)
        for record in records {
            let index = (edges.lastIndex { record.latencyMs >= $0 }) ?? 0
            counts[index] += 1
        }
        func name(_ ms: Int64) -> String { ms >= 1000 ? "\(ms / 1000)s" : ms >= 500 ? "0.5s" : "\(ms)" }
        let labels = edges.enumerated().map { index, edge in index + 1 < edges.count ? name(edge) : "≥\(name(edge))" }
        return bars(counts.map(Double.init), labels: labels, unit: "requests", xTitle: "latency (ms; each bar from its label to the next)")
    }

    static func bars(_ values: [Double], labels: [String], unit: String, xTitle: String, color: String = "#4e79a7") -> String {
        // Counts: at least 4, so the axis ticks are whole numbers.
        let top = max(values.max() ?? 1, 4)
        let left = 48.0, bottom = 36.0, plotHeight = height - bottom - 10
        let slot = (width - left - 10) / Double(max(values.count, 1))
        var svg = "<svg width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\">"
        svg += axis(left: left, bottom: height - bottom, top: 10, maxValue: top, unit: unit)
        for (index, value) in values.enumerated() {
            let barHeight = value / top * plotHeight
            let x = left + Double(index) * slot + slot * 0.1
            svg += "<rect x=\"\(f(x))\" y=\"\(f(height - bottom - barHeight))\" width=\"\(f(slot * 0.8))\" height=\"\(f(barHeight))\" fill=\"\(color)\"><title>\(labels[index]): \(Int(value))</title></rect>"
            svg += "<text x=\"\(f(x + slot * 0.4))\" y=\"\(f(height - bottom + 14))\" text-anchor=\"middle\">\(labels[index])</text>"
        }
        svg += "<text x=\"\(f(width / 2))\" y=\"\(f(height - 4))\" text-anchor=\"middle\">\(xTitle)</text></svg>"
        return svg
    }

    static func axis(left: Double, bottom: Double, top: Double, maxValue: Double, unit: String) -> String {
        var svg = "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(bottom))\" stroke=\"#999\"/>"
        svg += "<line x1=\"\(f(left))\" y1=\"\(f(bottom))\" x2=\"\(f(width - 10))\" y2=\"\(f(bottom))\" stroke=\"#999\"/>"
        for step in 0...4 {
            let value = maxValue * Double(step) / 4
            let y = bottom - (bottom - top) * Double(step) / 4
            svg += "<text x=\"\(f(left - 4))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(short(value))</text>"
            if step > 0 { svg += "<line x1=\"\(f(left))\" y1=\"\(f(y))\" x2=\"\(f(width - 10))\" y2=\"\(f(y))\" stroke=\"#eee\"/>" }
        }
        svg += "<text x=\"4\" y=\"\(f(top + 2))\" transform=\"rotate(-90 10 \(f(top + 40)))\">\(unit)</text>"
        return svg
    }

    static func pie(_ records: [RequestRecord]) -> String {
        let buckets: [(String, ClosedRange<Int64>)] = [
            ("< 10 ms", 0...9), ("10–50 ms", 10...49), ("50–100 ms", 50...99), ("100–500 ms", 100...499), ("0.5–1 s", 500...999), ("≥ 1 s", 1000...Int64.max),
        ]
        let counts = buckets.map { bucket in records.filter { bucket.1.contains($0.latencyMs) }.count }
        let total = Double(max(1, counts.reduce(0, +)))
        var svg = "<svg width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\">"
        let (cx, cy, r) = (110.0, height / 2, 90.0)
        var angle = -Double.pi / 2
        for (index, count) in counts.enumerated() where count > 0 {
            let sweep = Double(count) / total * 2 * Double.pi
            let color = colors[index % colors.count]
            if count == Int(total) {
                svg += "<circle cx=\"\(f(cx))\" cy=\"\(f(cy))\" r=\"\(f(r))\" fill=\"\(color)\"/>"
            } else {
                let (x1, y1) = (cx + r * cos(angle), cy + r * sin(angle))
                let (x2, y2) = (cx + r * cos(angle + sweep), cy + r * sin(angle + sweep))
                svg += "<path d=\"M\(f(cx)),\(f(cy)) L\(f(x1)),\(f(y1)) A\(f(r)),\(f(r)) 0 \(sweep > Double.pi ? 1 : 0) 1 \(f(x2)),\(f(y2)) Z\" fill=\"\(color)\" stroke=\"#fff\"/>"
            }
            angle += sweep
        }
        for (index, bucket) in buckets.enumerated() {
            let y = 30.0 + Double(index) * 26
            svg += "<rect x=\"250\" y=\"\(f(y - 11))\" width=\"14\" height=\"14\" fill=\"\(colors[index % colors.count])\"/>"
            svg += "<text x=\"270\" y=\"\(f(y))\">\(bucket.0): \(counts[index]) (\(String(format: "%.1f", Double(counts[index]) / total * 100))%)</text>"
        }
        return svg + "</svg>"
    }

    static func boxPlot(_ records: [RequestRecord]) -> String {
        let present = operations.filter { operation in records.contains { $0.operation == operation } }
        let stats = present.map { operation in Percentiles(records.filter { $0.operation == operation }.map(\.latencyMs)) }
        let top = Double(max(1, stats.map { $0.at(99) }.max() ?? 1))
        let left = 48.0, bottom = height - 36, topY = 10.0
        let slot = (width - left - 10) / Double(max(present.count, 1))
        func y(_ value: Int64) -> Double { bottom - Double(value) / top * (bottom - topY) }
        var svg = "<svg width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\">"
        svg += axis(left: left, bottom: bottom, top: topY, maxValue: top, unit: "ms")
        for (index, operation) in present.enumerated() {
            let p = stats[index]
            let center = left + slot * (Double(index) + 0.5)
            let half = slot * 0.25
            svg += "<line x1=\"\(f(center))\" y1=\"\(f(y(p.at(1))))\" x2=\"\(f(center))\" y2=\"\(f(y(p.at(99))))\" stroke=\"#555\"/>"
            svg += "<rect x=\"\(f(center - half))\" y=\"\(f(y(p.at(75))))\" width=\"\(f(2 * half))\" height=\"\(f(max(1, y(p.at(25)) - y(p.at(75)))))\" fill=\"#a0cbe8\" stroke=\"#4e79a7\"><title>\(operation): p25 \(p.at(25)), p50 \(p.at(50)), p75 \(p.at(75)), p99 \(p.at(99)) ms</title></rect>"
            svg += "<line x1=\"\(f(center - half))\" y1=\"\(f(y(p.at(50))))\" x2=\"\(f(center + half))\" y2=\"\(f(y(p.at(50))))\" stroke=\"#e15759\" stroke-width=\"2\"/>"
            svg += "<text x=\"\(f(center))\" y=\"\(f(bottom + 14))\" text-anchor=\"middle\">\(operation) (\(p.count))</text>"
        }
        return svg + "</svg>"
    }

    static func timeline(_ phase: PhaseResult) -> String {
        let seconds = max(1, Int(phase.seconds.rounded(.up)))
        var latencies = Array(repeating: [Int64](), count: seconds)
        var done = Array(repeating: 0, count: seconds)
        for record in phase.records {
            let second = min(seconds - 1, Int(record.intendedMs / 1000))
            if record.ok { latencies[second].append(record.latencyMs) }
            let finished = min(seconds - 1, Int(record.endMs / 1000))
            done[finished] += 1
        }
        let p50 = latencies.map { Percentiles($0).at(50) }
        let p99 = latencies.map { Percentiles($0).at(99) }
        let topLatency = Double(max(1, p99.max() ?? 1))
        let topRate = Double(max(1, done.max() ?? 1))
        let left = 48.0, right = width - 48, bottom = height - 36, topY = 10.0
        func x(_ second: Double) -> Double { left + second / Double(seconds) * (right - left) }
        var svg = "<svg width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\">"
        svg += axis(left: left, bottom: bottom, top: topY, maxValue: topLatency, unit: "ms")
        let slot = (right - left) / Double(seconds)
        for (second, count) in done.enumerated() {
            let barHeight = Double(count) / topRate * (bottom - topY)
            svg += "<rect x=\"\(f(x(Double(second)) + slot * 0.1))\" y=\"\(f(bottom - barHeight))\" width=\"\(f(slot * 0.8))\" height=\"\(f(barHeight))\" fill=\"#dfe8f1\"><title>second \(second): \(count) requests done</title></rect>"
        }
        for (values, color, name) in [(p50, "#4e79a7", "p50"), (p99, "#e15759", "p99")] {
            let points = values.enumerated().map { "\(f(x(Double($0.offset) + 0.5))),\(f(bottom - Double($0.element) / topLatency * (bottom - topY)))" }.joined(separator: " ")
            svg += "<polyline points=\"\(points)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"><title>\(name)</title></polyline>"
        }
        svg += "<text x=\"\(f(right + 4))\" y=\"\(f(topY + 8))\">\(Int(topRate)) req/s</text>"
        for failure in phase.outcome.failures {
            let fx = x(Double(failure.atMs) / 1000)
            svg += "<line x1=\"\(f(fx))\" y1=\"\(f(topY))\" x2=\"\(f(fx))\" y2=\"\(f(bottom))\" stroke=\"#b00020\" stroke-dasharray=\"4 3\"/>"
            svg += "<text x=\"\(f(fx + 3))\" y=\"\(f(topY + 12))\" fill=\"#b00020\">\(escape("\(failure.event.action.rawValue) \(failure.event.node)"))</text>"
        }
        svg += "<text x=\"\(f(left))\" y=\"\(f(height - 4))\"><tspan fill=\"#4e79a7\">— p50</tspan> <tspan fill=\"#e15759\">— p99</tspan> (by intended send second; bars: requests done per second) · time (s) 0–\(seconds)</text>"
        return svg + "</svg>"
    }

    static func errorsChart(_ phase: PhaseResult) -> String {
        let seconds = max(1, Int(phase.seconds.rounded(.up)))
        var errors = Array(repeating: 0.0, count: seconds)
        for record in phase.records where !record.ok { errors[min(seconds - 1, Int(record.endMs / 1000))] += 1 }
        return bars(errors, labels: (0..<seconds).map { $0 % max(1, seconds / 10) == 0 ? "\($0)" : "" }, unit: "errors", xTitle: "time (s)", color: "#e15759")
    }

    static func f(_ value: Double) -> String { String(format: "%.1f", value) }
    static func short(_ value: Double) -> String { value >= 1000 ? String(format: "%.1fk", value / 1000) : String(format: "%.0f", value) }
}
