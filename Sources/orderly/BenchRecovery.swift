import ArgumentParser
import AsyncHTTPClient
import EventLog
import Foundation
import OrderDomain

struct BenchRecovery: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recovery",
        abstract: "Time from start to ready of a node after SIGKILL, for logs of two sizes.",
        discussion: """
            For each size it writes a log of that many events (orders of 10 events),
            starts `orderly node` on it, SIGKILLs it, and times restarts to the ready
            record (median of --runs). It then reads an order to check the node serves
            what was written. Recovery loads nothing up front, so the ratio should
            stay near 1.
            """)

    @Option(help: "Comma-separated log sizes in events.")
    var sizes: String = "100000,1000000"

    @Option(help: "Restarts timed per size (median reported).")
    var runs: Int = 3

    @Option(help: "Folder for the data (default: a temp folder, removed at the end).")
    var dir: String?

    func validate() throws {
        guard parsedSizes.count >= 1, parsedSizes.allSatisfy({ $0 >= 10 }) else {
            throw ValidationError("--sizes must be a comma-separated list of event counts, each at least 10")
        }
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
    }

    private var parsedSizes: [Int] {
        sizes.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    }

    func run() async throws {
        let folder = try dir ?? BenchSupport.temporaryFolder("recovery")
        defer { if dir == nil { try? FileManager.default.removeItem(atPath: folder) } }
        var results: [(size: Int, medianS: Double, fileMB: Double)] = []
        for size in parsedSizes {
            let data = (folder as NSString).appendingPathComponent("size-\(size)")
            let start = ContinuousClock.now
            try await BenchSupport.fillLog(data: data, events: size)
            // The file and its WAL (a fresh log may still be all WAL).
            let fileBytes = ["", "-wal"].reduce(0) { total, suffix in
                total + ((try? FileManager.default.attributesOfItem(atPath: EventLog.path(data: data, node: "bench") + suffix)[.size] as? Int) ?? 0)
            }
            print("wrote \(size) events (\(fileBytes / 1_000_000) MB) in \(BenchSupport.format(BenchSupport.seconds(since: start), 1)) s")
            var times: [Double] = []
            // The first start only leaves a node to crash; the timed ones
            // each start on a log whose previous owner was SIGKILLed.
            var previous = try await startNode(data: data).process
            for _ in 0..<runs {
                previous.stop(signal: SIGKILL)
                let (process, seconds, http) = try await startNode(data: data)
                try await checkServes(http: http, orderIndex: size / 10 - 1)
                times.append(seconds)
                previous = process
            }
            previous.stop(signal: SIGKILL)
            let median = BenchSupport.quantile(times, 0.5)
            print("  size \(size): time to ready after SIGKILL \(times.map { BenchSupport.format($0 * 1000, 0) + " ms" }.joined(separator: ", "))")
            results.append((size, median, Double(fileBytes) / 1e6))
        }
        print("")
        print("events      file MB   ready after SIGKILL (median ms)")
        for result in results {
            print(String(result.size).leftPad(10) + BenchSupport.format(result.fileMB, 0).leftPad(10) + BenchSupport.format(result.medianS * 1000, 1).leftPad(22))
        }
        let ratio = results.count >= 2 ? results.last!.medianS / results.first!.medianS : 1
        print("ratio largest/smallest: \(BenchSupport.format(ratio, 2))")
        var json: [String: Any] = ["bench": "recovery", "ratio": (ratio * 100).rounded() / 100, "runs": runs]
        json["sizes"] = results.map { ["events": $0.size, "ready_ms": ($0.medianS * 10_000).rounded() / 10] }
        print(BenchSupport.json(json))
    }

    private func startNode(data: String) async throws -> (process: ChildProcess, seconds: Double, http: String) {
        let process = ChildProcess(
            arguments: ["node", "--id", "bench", "--data", data, "--http", "127.0.0.1:0", "--log-level", "warning"],
            stderrPath: (data as NSString).appendingPathComponent("node.log"))
        let start = ContinuousClock.now
        try process.start()
        let ready = try await process.waitReady(timeout: .seconds(120))
        return (process, BenchSupport.seconds(since: start), ready.http)
    }

    private func checkServes(http: String, orderIndex: Int) async throws {
        let request = HTTPClientRequest(url: "http://\(http)/orders/bench-o-\(orderIndex)")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok, String(buffer: body).contains("\"version\":10") else {
            throw ValidationError("after recovery, order bench-o-\(orderIndex) answered \(response.status): \(String(buffer: body))")
        }
    }
}
