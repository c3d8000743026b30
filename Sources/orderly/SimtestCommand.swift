import ArgumentParser
import ClusterSimulation
import Foundation
import Replication

struct SimtestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simtest",
        abstract: "Run the whole cluster in one process under a seeded simulator, many seeds at a time.",
        discussion: """
            Each seed runs every API node's real code (order engine, transactors,
            replicator, membership, dispatcher) on an in-memory log and a simulated
            network and clock, with customers and conflicting clients, and the faults
            the seed picks: crashes (unsynced writes lost), replaced disks, pauses,
            partitions (two-way, one-way, bridge), lost, duplicated and reordered
            messages, failed fsyncs, clock skew. After a heal and a quiet period a
            checker looks for acknowledged writes lost or overruled, histories that are
            not linearizable (consistent mode), two events at one (order, version),
            replicas or log copies that disagree, held payments not refunded, and
            orders that take no write. A failing seed prints its violations and the end
            of its trace; `--replay SEED --trace` runs it again, printing everything.
            The last line is JSON: {"seeds","failed","violations","seeds_per_s","history_hash"}.
            Exit status 1 on any violation. (`orderly simulate` drives load at a real
            cluster instead.)
            """)

    @Option(help: "Seeds to run.")
    var seeds: Int = 100

    @Option(help: "First seed.")
    var first: UInt64 = 1

    @Option(help: "Run only this seed, again (with --trace: print its whole trace).")
    var replay: UInt64?

    @Flag(help: "With --replay: print every line of the seed's trace as it happens.")
    var trace = false

    @Option(help: "API nodes in the simulated cluster (3-7).")
    var nodes: Int = 3

    @Option(help: "consistent or available.")
    var mode: PartitionMode = .consistent

    @Option(help: "leader, quorum or all.")
    var acks: AckPolicy = .quorum

    @Option(help: "Faults the seeds may pick: all, none, or a list of \(FaultKind.allCases.map(\.rawValue).joined(separator: ",")).")
    var faults: String = "all"

    @Option(help: "Seeds run in parallel (default: one per core).")
    var workers: Int?

    @Option(help: "Lines of trace printed for a failing seed.")
    var traceLines: Int = 40

    func validate() throws {
        guard (3...7).contains(nodes) else { throw ValidationError("--nodes must be 3-7") }
        guard seeds >= 1 else { throw ValidationError("--seeds must be at least 1") }
        guard FaultKind.parse(faults) != nil else {
            throw ValidationError("--faults: one of all, none, or a comma-separated list of \(FaultKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let workers, !(1...64).contains(workers) { throw ValidationError("--workers must be 1-64") }
        guard traceLines >= 0 else { throw ValidationError("--trace-lines must be at least 0") }
    }

    var simulationConfig: SimulationConfig {
        var config = SimulationConfig()
        config.nodes = nodes
        config.mode = mode
        config.acks = acks
        config.faults = FaultKind.parse(faults) ?? []
        return config
    }

    func run() throws {
        Self.makeHashingDeterministic()
        let config = simulationConfig
        if let replay {
            let stream: ((String) -> Void)? = trace ? { print($0) } : nil
            let result = SimulationRun(seed: replay, config: config).run(traceLines: traceLines, stream: stream)
            Self.printResult(result, traceLines: trace ? 0 : traceLines, always: true)
            Self.printSummary(seeds: 1, failed: result.violations.isEmpty ? 0 : 1, violations: result.violations.count, seconds: nil, hash: result.historyHash)
            if !result.violations.isEmpty { throw ExitCode(1) }
            return
        }
        let workerCount = workers ?? max(1, ProcessInfo.processInfo.activeProcessorCount)
        let seedList = (0..<UInt64(seeds)).map { first + $0 }
        print("simtest: \(seeds) seeds from \(first), \(nodes) nodes, \(mode.rawValue) mode, acks \(acks.rawValue), faults \(faults), \(workerCount) workers")
        let start = Date()
        let runner = SeedRunner(seeds: seedList, config: config, workers: workerCount, traceLines: traceLines) { done, failed in
            let seconds = Date().timeIntervalSince(start)
            progressLine("simtest: \(done)/\(seedList.count) seeds, \(failed) failed, \(String(format: "%.1f", Double(done) / max(seconds, 0.001))) seeds/s")
        }
        let results = runner.run()
        endProgress()
        let seconds = Date().timeIntervalSince(start)
        var failed = 0
        var violations = 0
        for result in results where !result.violations.isEmpty {
            failed += 1
            violations += result.violations.count
            Self.printResult(result, traceLines: traceLines, always: false)
        }
        let operations = results.reduce(0) { $0 + $1.operations }
        let acknowledged = results.reduce(0) { $0 + $1.acknowledged }
        print("simtest: \(seeds - failed) of \(seeds) seeds passed; \(operations) client calls, \(acknowledged) acknowledged; \(String(format: "%.1f", seconds)) s")
        if failed > 0 {
            print("failing seeds: \(results.filter { !$0.violations.isEmpty }.map { String($0.seed) }.joined(separator: " "))")
        }
        Self.printSummary(seeds: seeds, failed: failed, violations: violations, seconds: seconds, hash: results.first?.historyHash ?? "")
        if failed > 0 { throw ExitCode(1) }
    }

    static func printResult(_ result: SimulationRun.Result, traceLines: Int, always: Bool) {
        let verdict = result.violations.isEmpty ? "passed" : "FAILED with \(result.violations.count) violation(s)"
        print("seed \(result.seed): \(verdict); \(result.operations) client calls, \(result.acknowledged) acknowledged, \(result.messages) messages, \(result.jobs) steps, history \(result.historyHash)")
        for violation in result.violations { print("  " + violation.replacingOccurrences(of: "\n", with: "\n  ")) }
        if (always || !result.violations.isEmpty) && traceLines > 0 {
            print("  end of the trace of seed \(result.seed):")
            for line in result.traceTail.suffix(traceLines) { print("    " + line) }
        }
    }

    static func printSummary(seeds: Int, failed: Int, violations: Int, seconds: Double?, hash: String) {
        let rate = seconds.map { String(format: "%.1f", Double(seeds) / max($0, 0.001)) } ?? "null"
        print("{\"seeds\":\(seeds),\"failed\":\(failed),\"violations\":\(violations),\"seeds_per_s\":\(rate),\"history_hash\":\"\(hash)\"}")
    }

    /// Dictionaries and sets iterate in an order seeded per process unless
    /// SWIFT_DETERMINISTIC_HASHING is set when the process starts: run
    /// again with it, so that one seed gives one run in any process.
    static func makeHashingDeterministic() {
        guard ProcessInfo.processInfo.environment["SWIFT_DETERMINISTIC_HASHING"] == nil else { return }
        setenv("SWIFT_DETERMINISTIC_HASHING", "1", 1)
        let arguments = CommandLine.arguments
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        fflush(nil)
        execv("/proc/self/exe", &argv)
        // No /proc (not Linux): go on; a run is then deterministic only within this process.
        FileHandle.standardError.write(Data("simtest: could not re-run with SWIFT_DETERMINISTIC_HASHING=1; runs may differ between processes\n".utf8))
    }
}

/// Runs seeds on worker threads (each run drives its own simulated world on
/// the thread that runs it) and returns the results in seed order.
final class SeedRunner: @unchecked Sendable {
    private let seeds: [UInt64]
    private let config: SimulationConfig
    private let workers: Int
    private let traceLines: Int
    private let progress: (Int, Int) -> Void
    private let condition = NSCondition()
    private var next = 0
    private var results: [SimulationRun.Result?]
    private var done = 0
    private var failed = 0

    init(seeds: [UInt64], config: SimulationConfig, workers: Int, traceLines: Int, progress: @escaping (Int, Int) -> Void) {
        self.seeds = seeds
        self.config = config
        self.workers = workers
        self.traceLines = traceLines
        self.progress = progress
        results = Array(repeating: nil, count: seeds.count)
    }

    func run() -> [SimulationRun.Result] {
        var threads: [Thread] = []
        for _ in 0..<min(workers, seeds.count) {
            let thread = Thread { [self] in work() }
            thread.stackSize = 16 << 20
            threads.append(thread)
            thread.start()
        }
        condition.lock()
        while done < seeds.count {
            condition.wait()
        }
        condition.unlock()
        return results.compactMap { $0 }
    }

    private func work() {
        while true {
            condition.lock()
            guard next < seeds.count else {
                condition.unlock()
                return
            }
            let index = next
            next += 1
            condition.unlock()
            let result = SimulationRun(seed: seeds[index], config: config).run(traceLines: traceLines)
            condition.lock()
            results[index] = result
            done += 1
            if !result.violations.isEmpty { failed += 1 }
            progress(done, failed)
            condition.broadcast()
            condition.unlock()
        }
    }
}
