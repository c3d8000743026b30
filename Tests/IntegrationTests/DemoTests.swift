import Foundation
import Testing

/// `orderly demo` end to end: a whole cluster (balancer, warehouse, stats,
/// three API nodes), a phase without failures and one with a SIGKILL and
/// restart of an API node, the checker, and the report.
@Suite(.serialized) struct DemoTests {
    @Test func aShortDemoPassesTheCheckerAndWritesTheReport() async throws {
        let folder = try TemporaryFolder()
        let out = folder.file("report")
        let process = try OrderlyProcess(["demo", "--duration", "10", "--rate", "15", "--out", out], stderrPath: folder.file("demo.log"))
        defer { process.stop(signal: SIGTERM) }
        let status: Int32
        do {
            status = try await waitUntil("the demo to finish", timeout: .seconds(180)) {
                process.process.isRunning ? nil : process.process.terminationStatus
            }
        } catch {
            // Where it stood: its progress lines and the end of its log.
            Issue.record("\(error)\nstdout:\n\(process.stdout.suffix(3000))\nstderr:\n\(process.stderrTail())")
            return
        }
        #expect(status == 0, "demo failed: \(process.stdout)\n\(process.stderrTail())")

        let summary = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json"))) as? [String: Any])
        let checker = try #require(summary["checker"] as? [String: Any])
        #expect(checker["passed"] as? Bool == true, "\(checker)")
        #expect((checker["orders_checked"] as? Int ?? 0) > 50)
        let phases = try #require(summary["phases"] as? [[String: Any]])
        #expect(phases.map { $0["name"] as? String } == ["without node failures", "with node failures"])
        let failures = phases[1]["failures"] as? [[String: Any]] ?? []
        #expect(failures.compactMap { $0["event"] as? String }.map { $0.split(separator: "@")[0] } == ["kill api-2", "start api-2"])
        #expect(failures.allSatisfy { $0["error"] is NSNull }, "\(failures)")

        let html = try String(contentsOfFile: out + "/index.html", encoding: .utf8)
        #expect(html.components(separatedBy: "<svg").count - 1 == 10, "five charts per phase")
        #expect(!html.contains("src=") && !html.contains("<link") && !html.contains("@import"), "readable offline: nothing fetched")
        let csv = try String(contentsOfFile: out + "/requests.csv", encoding: .utf8)
        #expect(csv.split(separator: "\n").count > 100)
        // Every process of the cluster is stopped.
        let pids = process.stdout.split(separator: "\n").compactMap { line -> Int32? in
            let columns = line.split(separator: " ", omittingEmptySubsequences: true)
            return columns.count >= 6 && ["api", "stats", "wms", "balancer"].contains(String(columns[0])) ? Int32(columns[2]) : nil
        }
        #expect(pids.count == 6, "\(process.stdout)")
        for pid in pids { #expect(kill(pid, 0) != 0, "process \(pid) still runs") }
    }
}
