import EventLog
import HashRing
import Foundation
import OrderDomain
import StatsProjection
import Synchronization

/// Rebuilds the projection from log files opened read-only: every event of
/// every file, each event id once (copies of one event in several files
/// count once), folded by the same code as the live projection.
public enum StatsRebuild {
    public struct Result: Sendable {
        public var totals: StatsTotals
        /// Distinct events counted, one array per order.
        public var eventsByOrder: [[StatsEvent]]
        public var distinctEvents: Int
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
    ///
    /// Every core works: each origin's offsets are cut into ranges read on
    /// their own connections, each range groups its events by order into
    /// one partition per worker (by a hash of the order id), and then each
    /// partition is merged and folded on its own. An order's events all land
    /// in one partition, so the partitions' totals simply add up.
    public static func run(
        files: [String], limits: [String: Int64]? = nil, workers: Int = ProcessInfo.processInfo.activeProcessorCount,
        progress: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws -> Result {
        let start = ContinuousClock.now
        let workers = max(1, workers)
        struct Unit: Sendable { let file: String; let origin: String; let from: Int64; let through: Int64 }
        var units: [Unit] = []
        for file in files {
            let log = try EventLog.openReadOnly(path: file)
            for (origin, last) in try await log.origins() {
                let cap = min(last, limits.map { $0[origin] ?? 0 } ?? last)
                guard cap > 0 else { continue }
                let size = max(1, (cap + Int64(workers) - 1) / Int64(workers))
                for from in stride(from: Int64(1), through: cap, by: Int(size)) {
                    units.append(Unit(file: file, origin: origin, from: from, through: min(cap, from + size - 1)))
                }
            }
        }
        struct Read: Sendable {
            var partitions: [[String: [StatsEvent]]]
            var positions: [String: Int64] = [:]
            var rows = 0
        }
        final class RowCount: Sendable { let value = Mutex(0) }
        let rowsRead = RowCount()
        // Ranges, at most `workers` at a time.
        var reads: [Read] = []
        try await withThrowingTaskGroup(of: Read.self) { group in
            var next = 0
            func launch() {
                let unit = units[next]
                next += 1
                let workers = workers
                group.addTask { [rowsRead, progress] in
                    let log = try EventLog.openReadOnly(path: unit.file)
                    return try await log.withEventRows(origin: unit.origin, fromOffset: unit.from, throughOffset: unit.through) { rows in
                        var read = Read(partitions: Array(repeating: [:], count: workers))
                        var unreported = 0
                        var newest: Int64 = 0
                        func report() {
                            let (before, after) = rowsRead.value.withLock { total -> (Int, Int) in
                                let before = total
                                total += unreported
                                return (before, total)
                            }
                            unreported = 0
                            if before / 100_000 != after / 100_000 { progress(after) }
                        }
                        while let row = try rows.next() {
                            let orderID = String(decoding: row.orderID, as: UTF8.self)
                            let event: OrderEvent
                            let after: Term?
                            do {
                                (event, after) = try OrderEvent.decodeStored(typeName: row.type, payload: row.payload)
                            } catch {
                                throw StatsError.badInput("\(unit.file): event \(unit.origin):\(row.offset) of order \(orderID): \(error)")
                            }
                            let partition = Int(StableHash.hash64(bytes: row.orderID) % UInt64(workers))
                            read.partitions[partition][orderID, default: []].append(StatsEvent(
                                orderID: orderID, version: row.version, eventID: String(decoding: row.eventID, as: UTF8.self),
                                recordedAtMs: row.recordedAt, event: event, term: StatsEvent.term(row.term, origin: unit.origin), after: after))
                            read.rows += 1
                            newest = row.offset
                            unreported += 1
                            if unreported == 10_000 { report() }
                        }
                        report()
                        if newest > 0 { read.positions[unit.origin] = newest }
                        return read
                    }
                }
            }
            for _ in 0..<min(workers, units.count) { launch() }
            while let read = try await group.next() {
                reads.append(read)
                if next < units.count { launch() }
            }
        }
        var positions: [String: Int64] = [:]
        var rows = 0
        for read in reads {
            rows += read.rows
            positions.merge(read.positions) { max($0, $1) }
        }
        // Each partition merged and folded on its own.
        let partitionInputs = (0..<workers).map { index in reads.map { $0.partitions[index] } }
        var totals = StatsTotals()
        var eventsByOrder: [[StatsEvent]] = []
        var distinct = 0
        try await withThrowingTaskGroup(of: (StatsTotals, [[StatsEvent]], Int).self) { group in
            for parts in partitionInputs {
                group.addTask {
                    var byOrder: [String: [StatsEvent]] = [:]
                    for part in parts where !part.isEmpty {
                        if byOrder.isEmpty { byOrder = part } else { byOrder.merge(part) { $0 + $1 } }
                    }
                    var totals = StatsTotals()
                    var orders: [[StatsEvent]] = []
                    orders.reserveCapacity(byOrder.count)
                    var distinct = 0
                    for (_, orderEvents) in byOrder {
                        let canonical = OrderContribution.canonical(orderEvents)
                        totals.add(OrderContribution.of(canonical: canonical))
                        distinct += canonical.count
                        orders.append(canonical)
                    }
                    return (totals, orders, distinct)
                }
            }
            for try await (partTotals, partOrders, partDistinct) in group {
                totals.add(partTotals)
                eventsByOrder += partOrders
                distinct += partDistinct
            }
        }
        return Result(
            totals: totals, eventsByOrder: eventsByOrder, distinctEvents: distinct, positions: positions, rowsRead: rows,
            seconds: (ContinuousClock.now - start).seconds)
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
