import EventLog
import Foundation
import OrderDomain
import StatsProjection

/// Rebuilds the projection from log files opened read-only: every event of
/// every file, each event id once (copies of one event in several files
/// count once), folded by the same code as the live projection.
public enum StatsRebuild {
    public struct Result: Sendable {
        public var totals: StatsTotals
        /// Distinct events counted.
        public var events: [StatsEvent]
        /// Per origin, the newest offset read.
        public var positions: [String: Int64]
        /// Rows read, copies included.
        public var rowsRead: Int
        public var seconds: Double
    }

    /// The log files named: a file is taken as is; a folder contributes its
    /// `*/log.sqlite` (a data folder) or its own `log.sqlite`.
    public static func logFiles(_ paths: [String]) throws -> [String] {
        var files: [String] = []
        let manager = FileManager.default
        for path in paths {
            var isFolder: ObjCBool = false
            guard manager.fileExists(atPath: path, isDirectory: &isFolder) else { throw StatsError.badInput("no such file or folder: \(path)") }
            guard isFolder.boolValue else {
                files.append(path)
                continue
            }
            let own = (path as NSString).appendingPathComponent("log.sqlite")
            if manager.fileExists(atPath: own) {
                files.append(own)
                continue
            }
            let found = try manager.contentsOfDirectory(atPath: path).sorted()
                .map { (path as NSString).appendingPathComponent($0) + "/log.sqlite" }
                .filter { manager.fileExists(atPath: $0) }
            guard !found.isEmpty else { throw StatsError.badInput("no log.sqlite in \(path) or its subfolders") }
            files += found
        }
        return files
    }

    /// Reads and folds. `limits`, when given, caps each origin at an offset
    /// (origins it lacks are left out): the positions of a projection to
    /// compare with. `progress` gets the rows read so far, now and then.
    public static func run(files: [String], limits: [String: Int64]? = nil, progress: (Int) -> Void = { _ in }) async throws -> Result {
        let start = ContinuousClock.now
        // Grouped by order straight away: an order's contribution folds its
        // events each id once, so copies from several files need no global
        // index of event ids.
        var byOrder: [String: [StatsEvent]] = [:]
        var positions: [String: Int64] = [:]
        var rows = 0
        var reported = 0
        for file in files {
            let log = try EventLog.openReadOnly(path: file)
            for (origin, last) in try await log.origins() {
                let cap = limits.map { $0[origin] ?? 0 } ?? last
                var from: Int64 = 1
                while from <= cap {
                    let batch = try await log.scan(origin: origin, fromOffset: from, limit: 5000)
                    guard let lastRead = batch.last else { break }
                    for record in batch where record.offset <= cap {
                        rows += 1
                        byOrder[record.orderID, default: []].append(try StatsStore.statsEvent(record))
                        positions[origin] = max(positions[origin] ?? 0, record.offset)
                    }
                    from = lastRead.offset + 1
                    if rows - reported >= 100_000 {
                        reported = rows
                        progress(rows)
                    }
                }
            }
        }
        var totals = StatsTotals()
        var events: [StatsEvent] = []
        events.reserveCapacity(rows)
        for (_, orderEvents) in byOrder {
            totals.add(OrderContribution.of(orderEvents))
            if files.count == 1 {
                events += orderEvents
            } else {
                var seen = Set<String>()
                events += orderEvents.filter { seen.insert($0.eventID).inserted }
            }
        }
        return Result(totals: totals, events: events, positions: positions, rowsRead: rows, seconds: (ContinuousClock.now - start).seconds)
    }

    /// What differs between two projections, one line each (empty: equal).
    public static func differences(_ rebuilt: StatsTotals, _ other: StatsTotals, otherName: String, compareMinutes: Bool = true) -> [String] {
        var lines: [String] = []
        for sku in Set(rebuilt.products.keys).union(other.products.keys).sorted() {
            let mine = rebuilt.products[sku] ?? ProductFigures()
            let theirs = other.products[sku] ?? ProductFigures()
            guard mine != theirs else { continue }
            lines.append("product \(sku): rebuilt \(describe(mine)); \(otherName) \(describe(theirs))")
        }
        for status in Set(rebuilt.statuses.keys).union(other.statuses.keys).sorted() where rebuilt.statuses[status] != other.statuses[status] {
            lines.append("orders \(status): rebuilt \(rebuilt.statuses[status] ?? 0); \(otherName) \(other.statuses[status] ?? 0)")
        }
        if compareMinutes {
            for minute in Set(rebuilt.minutes.keys).union(other.minutes.keys).sorted() where rebuilt.minutes[minute] != other.minutes[minute] {
                let mine = rebuilt.minutes[minute] ?? MinuteFigures()
                let theirs = other.minutes[minute] ?? MinuteFigures()
                lines.append("minute \(minute): rebuilt \(mine.ordersPlaced) placed, \(mine.ordersPaid) paid, \(mine.revenueCents) cents; \(otherName) \(theirs.ordersPlaced) placed, \(theirs.ordersPaid) paid, \(theirs.revenueCents) cents")
            }
        }
        return lines
    }

    static func describe(_ figures: ProductFigures) -> String {
        "ordered \(figures.unitsOrdered), paid \(figures.unitsPaid), shipped \(figures.unitsShipped), refunded \(figures.unitsRefunded), revenue \(figures.revenueCents)"
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
