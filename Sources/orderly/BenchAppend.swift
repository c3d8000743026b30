import ArgumentParser
import EventLog
import Foundation

struct BenchAppend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "append",
        abstract: "Durable appends/s of the group-commit writer against a naive one-transaction-per-event writer.",
        discussion: """
            W concurrent writers each append one event at a time and wait until it is
            durable. The group-commit writer batches whatever is waiting into one
            transaction and fsyncs on a second thread while the next one is written;
            the naive writer commits and fsyncs each event on its own. Both run in
            this process, one after the other, on fresh files in a temp folder.
            """)

    @Option(help: "Events appended through the group-commit writer.")
    var events: Int = 200_000

    @Option(help: "Concurrent writers.")
    var writers: Int = 64

    @Option(help: "Events appended through the naive writer (it is slow; default events/20, at least 2000).")
    var naiveEvents: Int?

    @Option(help: "fsync or relaxed.")
    var durability: Durability = .fsync

    @Option(help: "SQLite page size of the new files.")
    var pageBytes: Int = EventLogOptions().pageBytes

    @Option(help: "WAL pages between SQLite checkpoints.")
    var walPages: Int = EventLogOptions().walAutocheckpointPages

    @Option(help: "Own events the writer lets wait before it adds them to order_index in one sorted batch.")
    var indexBatch: Int = EventLogOptions().indexBatchEvents

    @Option(help: "Rows of an index batch added to order_index in one transaction (appends commit between them).")
    var indexChunk: Int = EventLogOptions().indexChunkRows

    @Option(help: "Page cache of the writer connection, KiB.")
    var cacheKib: Int = EventLogOptions().writerCacheKibibytes

    @Option(help: "Folder for the log files (default: a temp folder, removed at the end).")
    var dir: String?

    func validate() throws {
        guard indexChunk >= 1 else { throw ValidationError("--index-chunk must be at least 1") }
        guard events >= writers, writers >= 1 else { throw ValidationError("--events must be at least --writers, and --writers at least 1") }
        guard [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536].contains(pageBytes) else {
            throw ValidationError("--page-bytes must be a power of two from 512 to 65536")
        }
        guard walPages >= 1, cacheKib >= 1, indexBatch >= 1 else {
            throw ValidationError("--wal-pages, --cache-kib and --index-batch must each be at least 1")
        }
    }

    struct Measurement {
        let events: Int
        let seconds: Double
        let latenciesMs: [Double]
        var eventsPerSecond: Double { Double(events) / seconds }
    }

    func run() async throws {
        let folder = try dir ?? BenchSupport.temporaryFolder("append")
        defer { if dir == nil { try? FileManager.default.removeItem(atPath: folder) } }
        let naiveCount = max(writers, naiveEvents ?? max(2000, events / 20))

        print("bench append: \(writers) writers, durability \(durability.rawValue), files in \(folder)")
        let grouped = try await measure(folder: folder, name: "group", events: events, batchRequestsMax: 4096, pipelinedSync: true)
        let naive = try await measure(folder: folder, name: "naive", events: naiveCount, batchRequestsMax: 1, pipelinedSync: false)
        let ratio = grouped.eventsPerSecond / naive.eventsPerSecond

        print("")
        print("writer        events   seconds   events/s   append p50 ms   append p99 ms")
        for (name, m) in [("group-commit", grouped), ("naive", naive)] {
            print(
                name.padding(toLength: 12, withPad: " ", startingAt: 0)
                    + String(m.events).leftPad(8) + BenchSupport.format(m.seconds, 2).leftPad(10)
                    + BenchSupport.format(m.eventsPerSecond, 0).leftPad(11)
                    + BenchSupport.format(BenchSupport.quantile(m.latenciesMs, 0.5), 3).leftPad(16)
                    + BenchSupport.format(BenchSupport.quantile(m.latenciesMs, 0.99), 3).leftPad(16))
        }
        print("ratio group/naive: \(BenchSupport.format(ratio, 1))x")
        print(BenchSupport.json([
            "bench": "append", "writers": writers, "durability": durability.rawValue,
            "events": events, "naive_events": naiveCount,
            "events_per_s": grouped.eventsPerSecond.rounded(), "naive_events_per_s": naive.eventsPerSecond.rounded(),
            "ratio": (ratio * 100).rounded() / 100,
            "p50_ms": BenchSupport.quantile(grouped.latenciesMs, 0.5), "p99_ms": BenchSupport.quantile(grouped.latenciesMs, 0.99),
        ]))
    }

    private func measure(folder: String, name: String, events: Int, batchRequestsMax: Int, pipelinedSync: Bool) async throws -> Measurement {
        var options = EventLogOptions()
        options.durability = durability
        options.batchRequestsMax = batchRequestsMax
        options.pipelinedSync = pipelinedSync
        options.pageBytes = pageBytes
        options.walAutocheckpointPages = walPages
        options.writerCacheKibibytes = cacheKib
        options.indexBatchEvents = indexBatch
        options.indexChunkRows = indexChunk
        let log = try EventLog.open(path: (folder as NSString).appendingPathComponent("\(name).sqlite"), node: "bench", options: options)
        defer { log.close() }
        let perWriter = events / writers
        let (seconds, latencies) = try await BenchSupport.runClients(writers, perClient: perWriter) { writer, index in
            let event = NewEvent(
                orderID: "o-\(writer)-\(index)", version: 1, type: "OrderPlaced",
                payload: #"{"v":1,"customer":"c-\#(writer)","lines":[{"sku":"SKU-00042","qty":2,"unit_price_cents":1999}],"total_cents":3998}"#)
            _ = try await log.append(AppendRequest(events: [event]))
        }
        let (commits, committed, writerCPU) = log.writerStatistics
        print("  \(name): \(commits) commits, mean batch \(BenchSupport.format(Double(committed) / Double(max(commits, 1)), 1)) events, \(log.walSyncs) WAL fsyncs")
        print("  \(name): writer thread CPU \(BenchSupport.format(writerCPU, 2)) s, \(BenchSupport.format(writerCPU * 1e6 / Double(max(committed, 1)), 2)) µs an event")
        let measurement = Measurement(events: perWriter * writers, seconds: seconds, latenciesMs: latencies)
        print("  \(name): \(measurement.events) events in \(BenchSupport.format(seconds, 2)) s")
        return measurement
    }
}

extension String {
    func leftPad(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
