import ArgumentParser
import Foundation

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks. Each prints a table and, as its last line, one JSON object.",
        subcommands: [BenchAppend.self, BenchRecovery.self, BenchForward.self, BenchRing.self, BenchReplicate.self, BenchRebuild.self])
}

/// Small helpers shared by the benchmarks.
enum BenchSupport {
    static func temporaryFolder(_ name: String) throws -> String {
        let path = (NSTemporaryDirectory() as NSString).appendingPathComponent("orderly-bench-\(name)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// The q-quantile (0...1) of unsorted samples, nearest rank.
    static func quantile(_ samples: [Double], _ q: Double) -> Double {
        guard !samples.isEmpty else { return 0 }
        let sorted = samples.sorted()
        let rank = min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))
        return sorted[rank]
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        let (seconds, attoseconds) = elapsed.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    static func format(_ value: Double, _ digits: Int = 1) -> String {
        String(format: "%.\(digits)f", value)
    }

    /// Runs `clients` concurrent loops of `perClient` operations, each timed
    /// from its start to its completion. Returns the wall time and every
    /// operation's latency in ms.
    static func runClients(
        _ clients: Int, perClient: Int, _ operation: @escaping @Sendable (_ client: Int, _ index: Int) async throws -> Void
    ) async throws -> (seconds: Double, latenciesMs: [Double]) {
        let start = ContinuousClock.now
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for client in 0..<clients {
                group.addTask {
                    var latencies: [Double] = []
                    latencies.reserveCapacity(perClient)
                    for index in 0..<perClient {
                        let sent = ContinuousClock.now
                        try await operation(client, index)
                        latencies.append(seconds(since: sent) * 1000)
                    }
                    return latencies
                }
            }
            var all: [Double] = []
            for try await part in group { all += part }
            return all
        }
        return (seconds(since: start), latencies)
    }

    /// User plus system CPU time a process has used so far (Linux
    /// /proc/PID/stat; 0 where it cannot be read).
    static func cpuSeconds(pid: Int32) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        // Fields after the command name: state is the 3rd field; utime and
        // stime the 14th and 15th.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func json(_ object: [String: Any]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
