import ArgumentParser
import AsyncHTTPClient
import Foundation
import HTTPAPI
import Hummingbird
import Logging
import Node
import ServiceLifecycle
import Stats
import StatsProjection
import Wire

struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Run the stats node, or rebuild its projection from log files.",
        subcommands: [StatsRun.self, StatsRebuildCommand.self],
        defaultSubcommand: StatsRun.self)
}

struct StatsRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Tail every origin's log and serve product statistics (the default of `orderly stats`).",
        discussion: """
            The projection lives in DATA/stats/stats.sqlite. Each batch of a log is
            counted in the same transaction that moves that log's position, so every
            event counts exactly once across restarts and crashes. Once it serves, one
            line of JSON goes to stdout: {"ready":true,"role":"stats",...}.
            """)

    @OptionGroup
    var options: FollowerRoleOptions

    func run() async throws {
        let role = try options.start(.init(name: "stats", defaultHTTP: "127.0.0.1:8090"))
        let store = try StatsStore(path: role.file)
        let follower = LogTail(sink: store, clients: role.clients, config: .init(seeds: role.seeds), id: role.id, logger: role.logger)
        let rebuild = OnlineRebuild(store: store, clients: role.clients, config: .init(seeds: role.seeds), id: role.id, logger: role.logger)
        let router = Router()
        StatsRoutes(store: store, follower: follower, rebuild: rebuild, adminToken: role.adminToken).register(on: router)
        try await RoleServer.run(
            role: "stats", id: role.id, http: role.http, router: router, registry: role.registry, tls: role.tls, ready: { follower.connected },
            services: [follower], logger: role.logger)
    }
}

struct StatsRebuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebuild",
        abstract: "Rebuild the stats projection from log files (read-only; no running cluster needed).",
        discussion: """
            --logs takes log files or data folders (every DATA/*/log.sqlite). An event
            found in several files (copies) counts once. With --compare, the rebuild
            reads each origin only as far as the other projection has, then lists what
            differs and exits 1 if anything does.
            """)

    @Option(parsing: .upToNextOption, help: "Log files or data folders.")
    var logs: [String]

    @Option(help: "Write the rebuilt projection to this new file.")
    var out: String?

    @Option(help: "A stats.sqlite file, or a stats node's URL (http://host:port), to compare with.")
    var compare: String?

    func validate() throws {
        guard !logs.isEmpty else { throw ValidationError("--logs needs at least one file or folder") }
        guard out != nil || compare != nil else { throw ValidationError("give --out, --compare, or both") }
        if let out, FileManager.default.fileExists(atPath: out) { throw ValidationError("\(out) exists; rebuild into a new file") }
    }

    func run() async throws {
        let files = try StatsRebuild.logFiles(logs)
        var other: (name: String, totals: StatsTotals, positions: [String: Int64], minutes: Bool)?
        if let compare {
            other = compare.hasPrefix("http://") || compare.hasPrefix("https://")
                ? try await Self.live(compare) : try await Self.file(compare)
        }
        FileHandle.standardError.write(Data("reading \(files.count) log file(s)\n".utf8))
        let result = try await StatsRebuild.run(files: files, limits: other?.positions) { rows in
            FileHandle.standardError.write(Data("  \(rows) events read\n".utf8))
        }
        let rate = Double(result.rowsRead) / max(result.seconds, 1e-9)
        print("rebuilt from \(result.rowsRead) events (\(result.distinctEvents) distinct) in \(String(format: "%.2f", result.seconds)) s: \(Int(rate)) events/s")
        print("orders: \(result.totals.statuses.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")); revenue \(result.totals.revenueCents) cents")
        if let out {
            let store = try StatsStore(path: out)
            try await store.write(totals: result.totals, eventsByOrder: result.eventsByOrder, positions: result.positions)
            print("wrote \(out)")
        }
        if let other {
            let differences = StatsRebuild.differences(result.totals, other.totals, otherName: other.name, compareMinutes: other.minutes)
            if differences.isEmpty {
                print("equal to \(other.name) at its positions \(other.positions.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: " "))")
            } else {
                print("\(differences.count) difference(s) from \(other.name):")
                for line in differences { print("  " + line) }
                throw ExitCode(1)
            }
        }
    }

    static func file(_ path: String) async throws -> (String, StatsTotals, [String: Int64], Bool) {
        let store = try StatsStore(path: path, readOnly: true)
        return (path, try await store.totals(), try await store.positions(), true)
    }

    /// A live stats node: its positions and figures, read together twice
    /// until they agree (the node keeps counting meanwhile).
    static func live(_ url: String) async throws -> (String, StatsTotals, [String: Int64], Bool) {
        let base = url.hasSuffix("/") ? String(url.dropLast()) : url
        for _ in 0..<20 {
            let before = try await getJSON("\(base)/stats/summary")
            let products = try await getJSON("\(base)/stats/products?sort=sku&limit=\(StatsRoutes.limitMax)")
            let after = try await getJSON("\(base)/stats/summary")
            let positions = (before["positions"] as? [String: Any] ?? [:]).mapValues { ($0 as? NSNumber)?.int64Value ?? 0 }
            let positionsAfter = (after["positions"] as? [String: Any] ?? [:]).mapValues { ($0 as? NSNumber)?.int64Value ?? 0 }
            guard positions == positionsAfter else { continue }
            var totals = StatsTotals()
            for item in products["products"] as? [[String: Any]] ?? [] {
                func value(_ key: String) -> Int64 { (item[key] as? NSNumber)?.int64Value ?? 0 }
                let figures = ProductFigures(
                    unitsOrdered: value("units_ordered"), unitsPaid: value("units_paid"), unitsShipped: value("units_shipped"),
                    unitsRefunded: value("units_refunded"), revenueCents: value("revenue_cents"))
                if !figures.isZero, let sku = item["sku"] as? String { totals.products[sku] = figures }
            }
            for (status, count) in before["orders"] as? [String: Any] ?? [:] {
                if let count = (count as? NSNumber)?.int64Value, count != 0 { totals.statuses[status] = count }
            }
            return (url, totals, positions, false)
        }
        throw ValidationError("\(url) kept counting while it was read; try again when the load is lower")
    }

    static func getJSON(_ url: String) async throws -> [String: Any] {
        guard let json = await ClusterLauncher.getJSON(url, timeout: .seconds(10)) else {
            throw ValidationError("\(url) did not answer 200 with a JSON object")
        }
        return json
    }
}
