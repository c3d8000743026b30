import ArgumentParser
import ClusterSimulation
import Foundation
import ProcessLaunch
import Replication

struct SimtestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simtest",
        abstract: "Run the whole cluster in one process under a seeded simulator, many seeds at a time.",
        discussion: """
            Each seed runs every API node's real code (order engine, transactors,
            replicator, membership, dispatcher) on an in-memory log and a simulated
            network and clock, with customers and conflicting clients, and the faults
            the seed picks: crashes (unsynced writes lost), replaced disks, logs restored
            from an older backup, pauses,
            partitions (two-way, one-way, bridge), lost, duplicated and reordered
            messages, failed fsyncs, clock skew, a node joining and one leaving for
            good, and rolling upgrades (each node stopped with SIGTERM and started
            again on its disk). After a heal and a quiet period a checker looks for acknowledged
            writes lost or overruled, histories that are not linearizable (consistent
            mode), two events at one (order, version),
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

    @Option(help: "leader, quorum or all. Under leader, a write only its leader held when it failed over is superseded by the next term, by design (README, 'What a 2xx promises'), and the checker reports it: such seeds fail.")
    var acks: AckPolicy = .quorum

    @Option(help: "Faults the seeds may pick: all, none, or a list of \(FaultKind.allCases.map(\.rawValue).joined(separator: ",")).")
    var faults: String = "all"

    @Option(help: "New customers a second of simulated time (each places an order, pays, may cancel); more makes a node activate more orders at once, which batches its gathering fetches (1-100).")
    var customersPerSecond: Double = SimulationConfig().customersPerSecond

    @Option(help: "Seeds run in parallel (default: one per core).")
    var workers: Int?

    @Option(help: "Lines of trace printed for a failing seed.")
    var traceLines: Int = 40

    /// Internal: run the seeds here and print one JSON result per seed
    /// (the parent of a chunked run reads them).
    @Flag(help: .hidden)
    var resultLines = false

    func validate() throws {
        guard (3...7).contains(nodes) else { throw ValidationError("--nodes must be 3-7") }
        guard seeds >= 1 else { throw ValidationError("--seeds must be at least 1") }
        guard FaultKind.parse(faults) != nil else {
            throw ValidationError("--faults: one of all, none, or a comma-separated list of \(FaultKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let workers, !(1...64).contains(workers) { throw ValidationError("--workers must be 1-64") }
        guard (1...100).contains(customersPerSecond) else { throw ValidationError("--customers-per-second must be 1-100") }
        guard traceLines >= 0 else { throw ValidationError("--trace-lines must be at least 0") }
    }

    var simulationConfig: SimulationConfig {
        var config = SimulationConfig()
        config.nodes = nodes
        config.mode = mode
        config.acks = acks
        config.faults = FaultKind.parse(faults) ?? []
        config.customersPerSecond = customersPerSecond
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
        if resultLines {
            // A chunk of a parent's run: one seed after another, each result
            // as a JSON line as soon as it is known.
            let encoder = JSONEncoder()
            for seed in (0..<UInt64(seeds)).map({ first + $0 }) {
                let result = SimulationRun(seed: seed, config: config).run(traceLines: traceLines)
                FileHandle.standardOutput.write(try encoder.encode(result) + Data("\n".utf8))
            }
            return
        }
        let workerCount = workers ?? max(1, ProcessInfo.processInfo.activeProcessorCount)
        let seedList = (0..<UInt64(seeds)).map { first + $0 }
        print("simtest: \(seeds) seeds from \(first), \(nodes) nodes, \(mode.rawValue) mode, acks \(acks.rawValue), faults \(faults), \(customersPerSecond) customers/s, \(workerCount) workers")
        let start = Date()
        let runner = SeedRunner(seeds: seedList, workers: workerCount, childArguments: childArguments) { done, failed in
            let seconds = Date().timeIntervalSince(start)
            progressLine("simtest: \(done)/\(seedList.count) seeds, \(failed) failed, \(String(format: "%.1f", Double(done) / max(seconds, 0.001))) seeds/s")
        }
        let results = try runner.run()
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

    /// The options a chunk's process runs with (seeds and first are added).
    var childArguments: [String] {
        ["simtest", "--nodes", "\(nodes)", "--mode", mode.rawValue, "--acks", acks.rawValue, "--faults", faults,
         "--customers-per-second", "\(customersPerSecond)", "--trace-lines", "\(traceLines)", "--result-lines"]
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

/// Runs seeds on worker threads and returns the results in seed order.
/// Each worker runs chunks of seeds in a process of its own: a crashed
/// node's suspended tasks are never resumed, so a simulated world cannot
/// free all it made, and a process per chunk keeps memory bounded however
/// many seeds run (a seed's result is the same in any process).
final class SeedRunner: @unchecked Sendable {
    /// Seeds per child process, at most.
    static let chunkMax = 100

    private let seeds: [UInt64]
    private let workers: Int
    /// Every worker gets work: runs of fewer seeds take smaller chunks.
    private let chunk: Int
    private let childArguments: [String]
    private let progress: (Int, Int) -> Void
    private let condition = NSCondition()
    private var next = 0
    private var results: [SimulationRun.Result?]
    private var done = 0
    private var failed = 0
    private var failure: String?

    /// `childArguments`: every option of the run but the seeds (a chunk's
    /// process gets `--seeds` and `--first`).
    init(seeds: [UInt64], workers: Int, childArguments: [String], progress: @escaping (Int, Int) -> Void) {
        self.seeds = seeds
        self.workers = workers
        chunk = max(1, min(Self.chunkMax, (seeds.count + workers - 1) / max(workers, 1)))
        self.childArguments = childArguments
        self.progress = progress
        results = Array(repeating: nil, count: seeds.count)
    }

    /// Throws when a chunk's process failed (it crashed, or printed
    /// something that is not a result).
    func run() throws -> [SimulationRun.Result] {
        var threads: [Thread] = []
        for _ in 0..<min(workers, seeds.count) {
            let thread = Thread { [self] in work() }
            thread.stackSize = 16 << 20
            threads.append(thread)
            thread.start()
        }
        condition.lock()
        while done < seeds.count && failure == nil {
            condition.wait()
        }
        let failure = self.failure
        condition.unlock()
        if let failure {
            FileHandle.standardError.write(Data((failure + "\n").utf8))
            throw ExitCode(1)
        }
        return results.compactMap { $0 }
    }

    private func work() {
        while true {
            condition.lock()
            guard next < seeds.count, failure == nil else {
                condition.unlock()
                return
            }
            let range = next..<min(next + chunk, seeds.count)
            next = range.upperBound
            condition.unlock()
            do {
                try runChunk(range)
            } catch {
                condition.lock()
                failure = "simtest: seeds \(seeds[range.lowerBound])-\(seeds[range.upperBound - 1]): \(error)"
                condition.broadcast()
                condition.unlock()
                return
            }
        }
    }

    /// Runs the seeds of `range` in a child process, noting each result as
    /// its line arrives.
    private func runChunk(_ range: Range<Int>) throws {
        let process = Process()
        // The running executable, even if its file was replaced meanwhile.
        let path = FileManager.default.fileExists(atPath: "/proc/self/exe") ? "/proc/self/exe" : ChildProcess.selfExecutable
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = childArguments + ["--seeds", "\(range.count)", "--first", "\(seeds[range.lowerBound])"]
        // The child stops when this process is gone (Ctrl-C, a kill).
        process.environment = ProcessInfo.processInfo.environment.merging([ParentWatch.variable: "1"]) { $1 }
        let pipe = try ProcessLaunch.serialized {
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            return pipe
        }
        var finished = false
        defer {
            if !finished && process.isRunning {
                process.terminate()
                process.waitUntilExit()
            }
        }
        let decoder = JSONDecoder()
        var buffer = Data()
        var index = range.lowerBound
        func take(_ line: Data) throws {
            guard !line.isEmpty else { return }
            guard index < range.upperBound, let result = try? decoder.decode(SimulationRun.Result.self, from: line),
                result.seed == seeds[index]
            else { throw ChunkFailure("a chunk's process printed something else: \(String(decoding: line.prefix(200), as: UTF8.self))") }
            condition.lock()
            results[index] = result
            done += 1
            if !result.violations.isEmpty { failed += 1 }
            progress(done, failed)
            condition.broadcast()
            condition.unlock()
            index += 1
        }
        while true {
            let data = pipe.fileHandleForReading.availableData
            if data.isEmpty { break }
            buffer.append(data)
            while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = buffer[buffer.startIndex..<newline]
                buffer = Data(buffer[buffer.index(after: newline)...])
                try take(Data(line))
            }
        }
        process.waitUntilExit()
        finished = true
        guard process.terminationStatus == 0 else {
            throw ChunkFailure("a chunk's process exited with status \(process.terminationStatus) after \(index - range.lowerBound) of \(range.count) seeds")
        }
        try take(buffer)
        guard index == range.upperBound else {
            throw ChunkFailure("a chunk's process printed \(index - range.lowerBound) of \(range.count) results")
        }
    }
}

/// Why a chunk of seeds gave no result.
struct ChunkFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
