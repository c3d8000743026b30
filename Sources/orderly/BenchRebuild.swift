import ArgumentParser
import EventLog
import Foundation
import Stats

struct BenchRebuild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebuild",
        abstract: "Stats rebuild events/s beside a raw SQLite scan of the same log, in one run.",
        discussion: """
            Writes a log of --events events (orders of 10 events), then, --runs times
            each, scans it raw (every column of every row, no checksum, no decoding)
            and rebuilds the stats projection from it (read, verify checksums, decode,
            fold). Medians are reported; writing the rebuilt file is timed apart.
            """)

    @Option(help: "Events in the log.")
    var events: Int = 1_000_000

    @Option(help: "Timed runs of each (median reported).")
    var runs: Int = 3

    @Option(help: "Folder for the data (default: a temp folder, removed at the end).")
    var dir: String?

    func validate() throws {
        guard events >= 10 else { throw ValidationError("--events must be at least 10") }
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
    }

    func run() async throws {
        let folder = try dir ?? BenchSupport.temporaryFolder("rebuild")
        defer { if dir == nil { try? FileManager.default.removeItem(atPath: folder) } }
        let data = (folder as NSString).appendingPathComponent("data")
        let start = ContinuousClock.now
        try await BenchSupport.fillLog(data: data, events: events)
        let file = EventLog.path(data: data, node: "bench")
        print("wrote \(events) events in \(BenchSupport.format(BenchSupport.seconds(since: start), 1)) s")

        var raw: [Double] = []
        var rebuild: [Double] = []
        var counted = 0
        var result: StatsRebuild.Result?
        for run in 1...runs {
            let log = try EventLog.openReadOnly(path: file)
            let scanStart = ContinuousClock.now
            let scanned = try await log.rawScan()
            let scanSeconds = BenchSupport.seconds(since: scanStart)
            raw.append(Double(scanned.rows) / scanSeconds)
            let rebuilt = try await StatsRebuild.run(files: [file])
            rebuild.append(Double(rebuilt.rowsRead) / rebuilt.seconds)
            counted = rebuilt.distinctEvents
            result = rebuilt
            print("  run \(run): raw scan \(Int(raw.last!)) rows/s, rebuild \(Int(rebuild.last!)) events/s")
        }
        let out = (folder as NSString).appendingPathComponent("rebuilt.sqlite")
        let writeStart = ContinuousClock.now
        if let result { try await StatsStore(path: out).write(totals: result.totals, eventsByOrder: result.eventsByOrder, positions: result.positions) }
        let writeSeconds = BenchSupport.seconds(since: writeStart)

        let rebuildRate = BenchSupport.quantile(rebuild, 0.5)
        let rawRate = BenchSupport.quantile(raw, 0.5)
        print("")
        print("raw SQLite scan      \(Int(rawRate)) events/s")
        print("stats rebuild        \(Int(rebuildRate)) events/s (\(counted) events folded)")
        print("ratio                \(BenchSupport.format(rebuildRate / rawRate, 2))")
        print("writing the rebuilt projection file: \(BenchSupport.format(writeSeconds, 2)) s")
        print(BenchSupport.json([
            "bench": "rebuild", "events": events, "runs": runs,
            "events_per_s": Int(rebuildRate), "raw_scan_events_per_s": Int(rawRate),
            "ratio": (rebuildRate / rawRate * 100).rounded() / 100, "write_s": (writeSeconds * 100).rounded() / 100,
        ]))
    }
}
