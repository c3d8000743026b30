import EventLog
import Foundation
import GRDB
import GRDBSQLite
import Node
import OrderDomain
import StatsProjection

/// `stats.sqlite`: the projection, the events it counted (per order, so a
/// late or merged event refolds its order), and how far it has read each
/// origin's log. A batch, its figures and the origin's position commit in
/// one transaction: after any crash each event has counted exactly once.
public final class StatsStore: LogSink, Sendable {
    public let path: String
    private let pool: DatabasePool

    static let schema = """
        CREATE TABLE order_events (
            event_id TEXT PRIMARY KEY,
            order_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            recorded_at INTEGER NOT NULL,
            type TEXT NOT NULL,
            payload TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX order_events_by_order ON order_events (order_id);
        CREATE TABLE product_stats (
            sku TEXT PRIMARY KEY,
            units_ordered INTEGER NOT NULL,
            units_paid INTEGER NOT NULL,
            units_shipped INTEGER NOT NULL,
            units_refunded INTEGER NOT NULL,
            revenue_cents INTEGER NOT NULL
        );
        CREATE TABLE status_counts (status TEXT PRIMARY KEY, orders INTEGER NOT NULL);
        CREATE TABLE minute_stats (
            minute INTEGER PRIMARY KEY,
            orders_placed INTEGER NOT NULL,
            orders_paid INTEGER NOT NULL,
            revenue_cents INTEGER NOT NULL
        );
        CREATE TABLE stats_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO stats_meta (key, value) VALUES ('events_counted', 0);
        """

    /// Opens (creating) a projection file.
    public init(path: String, readOnly: Bool = false) throws {
        self.path = path
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        configuration.readonly = readOnly
        if !readOnly {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        } else if !FileManager.default.fileExists(atPath: path) {
            throw StatsError.badInput("no stats file at \(path)")
        }
        pool = try DatabasePool(path: path, configuration: configuration)
        if !readOnly {
            var migrator = DatabaseMigrator()
            migrator.registerMigration("0001_stats") { db in try db.execute(sql: ReadPositions.schema + Self.schema) }
            // The term and origin of each event: a superseded one (a deposed
            // leader's write, never acknowledged) counts for nothing.
            migrator.registerMigration("0002_terms") { db in
                try db.execute(sql: """
                    ALTER TABLE order_events ADD COLUMN term INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE order_events ADD COLUMN origin TEXT NOT NULL DEFAULT '';
                    """)
            }
            try migrator.migrate(pool)
        }
    }

    /// Counts a batch of one origin's log and moves that origin's position
    /// to `through`, atomically. Returns the events that were new.
    @discardableResult
    public func apply(_ records: [EventRecord], origin: String, through: Int64?) async throws -> Int {
        let events = try records.map(Self.statsEvent)
        return try await pool.write { db in
            let fresh = try Self.count(events, db)
            if let through { try ReadPositions.advance(origin: origin, through: through, in: db) }
            return fresh
        }
    }

    static func statsEvent(_ record: EventRecord) throws -> StatsEvent {
        let stored = try OrderEvent.decodeStored(typeName: record.type, payload: record.payload)
        return StatsEvent(
            orderID: record.orderID, version: record.version, eventID: record.eventID, recordedAtMs: record.recordedAt,
            event: stored.event, term: StatsEvent.term(record.term, origin: record.origin), after: stored.after)
    }

    /// Folds events into the tables inside the caller's transaction.
    static func count(_ events: [StatsEvent], _ db: Database) throws -> Int {
        guard !events.isEmpty else { return 0 }
        let orders = Set(events.map(\.orderID))
        var held: [String: [StatsEvent]] = [:]
        let select = try db.cachedStatement(sql: "SELECT event_id, version, recorded_at, type, payload, term, origin FROM order_events WHERE order_id = ?")
        for order in orders {
            for row in try Row.fetchAll(select, arguments: [order]) {
                let type: String = row[3]
                let payload: String = row[4]
                let stored = try OrderEvent.decodeStored(typeName: type, payload: payload)
                held[order, default: []].append(StatsEvent(
                    orderID: order, version: row[1], eventID: row[0], recordedAtMs: row[2],
                    event: stored.event, term: StatsEvent.term(row[5], origin: row[6]), after: stored.after))
            }
        }
        let (fresh, delta) = StatsFold.apply(events, held: held)
        let insert = try db.cachedStatement(sql: """
            INSERT INTO order_events (event_id, order_id, version, recorded_at, type, payload, term, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for event in fresh {
            try insert.execute(arguments: [
                event.eventID, event.orderID, event.version, event.recordedAtMs, event.event.typeName, event.event.payloadJSON(after: event.after),
                event.term.number, event.term.leader,
            ])
        }
        try add(delta, db)
        try db.execute(sql: "UPDATE stats_meta SET value = value + ? WHERE key = 'events_counted'", arguments: [fresh.count])
        return fresh.count
    }

    static func add(_ delta: StatsTotals, _ db: Database) throws {
        let product = try db.cachedStatement(sql: """
            INSERT INTO product_stats (sku, units_ordered, units_paid, units_shipped, units_refunded, revenue_cents) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT(sku) DO UPDATE SET units_ordered = units_ordered + excluded.units_ordered,
                units_paid = units_paid + excluded.units_paid, units_shipped = units_shipped + excluded.units_shipped,
                units_refunded = units_refunded + excluded.units_refunded, revenue_cents = revenue_cents + excluded.revenue_cents
            """)
        for (sku, figures) in delta.products {
            try product.execute(arguments: [
                sku, figures.unitsOrdered, figures.unitsPaid, figures.unitsShipped, figures.unitsRefunded, figures.revenueCents,
            ])
        }
        let status = try db.cachedStatement(sql: """
            INSERT INTO status_counts (status, orders) VALUES (?, ?) ON CONFLICT(status) DO UPDATE SET orders = orders + excluded.orders
            """)
        for (name, count) in delta.statuses { try status.execute(arguments: [name, count]) }
        let minute = try db.cachedStatement(sql: """
            INSERT INTO minute_stats (minute, orders_placed, orders_paid, revenue_cents) VALUES (?, ?, ?, ?)
            ON CONFLICT(minute) DO UPDATE SET orders_placed = orders_placed + excluded.orders_placed,
                orders_paid = orders_paid + excluded.orders_paid, revenue_cents = revenue_cents + excluded.revenue_cents
            """)
        for (key, figures) in delta.minutes {
            try minute.execute(arguments: [key, figures.ordersPlaced, figures.ordersPaid, figures.revenueCents])
        }
    }

    // MARK: Online rebuild

    static let tables = ["positions", "order_events", "product_stats", "status_counts", "minute_stats", "stats_meta"]

    /// Replaces this projection with the one in `shadow`, in one transaction
    /// (readers see the old or the new, never a mix), if the shadow has read
    /// every origin at least as far as this one. Returns false, changing
    /// nothing, when it has not. Batches of the live tail wait meanwhile;
    /// those it sends after the swap from older positions hold events the
    /// shadow counted already, and count nothing (event ids are kept).
    public func replaceContents(from shadow: String) async throws -> Bool {
        try await pool.writeWithoutTransaction { db in
            try db.execute(sql: "ATTACH DATABASE ? AS shadow", arguments: [shadow])
            defer { try? db.execute(sql: "DETACH DATABASE shadow") }
            var swapped = false
            try db.inTransaction(.immediate) {
                var mine: [String: Int64] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT origin, through_offset FROM main.positions") { mine[row[0]] = row[1] }
                var theirs: [String: Int64] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT origin, through_offset FROM shadow.positions") { theirs[row[0]] = row[1] }
                guard mine.allSatisfy({ theirs[$0.key, default: 0] >= $0.value }) else { return .rollback }
                for table in Self.tables {
                    try db.execute(sql: "DELETE FROM main.\(table)")
                    try db.execute(sql: "INSERT INTO main.\(table) SELECT * FROM shadow.\(table)")
                }
                swapped = true
                return .commit
            }
            return swapped
        }
    }

    // MARK: Reading

    /// The whole projection (rows that sum to zero left out).
    public func totals() async throws -> StatsTotals {
        try await pool.read { db in
            var totals = StatsTotals()
            for row in try Row.fetchAll(db, sql: "SELECT sku, units_ordered, units_paid, units_shipped, units_refunded, revenue_cents FROM product_stats") {
                let figures = ProductFigures(unitsOrdered: row[1], unitsPaid: row[2], unitsShipped: row[3], unitsRefunded: row[4], revenueCents: row[5])
                if !figures.isZero { totals.products[row[0]] = figures }
            }
            for row in try Row.fetchAll(db, sql: "SELECT status, orders FROM status_counts WHERE orders != 0") {
                totals.statuses[row[0]] = row[1]
            }
            for row in try Row.fetchAll(db, sql: "SELECT minute, orders_placed, orders_paid, revenue_cents FROM minute_stats") {
                let figures = MinuteFigures(ordersPlaced: row[1], ordersPaid: row[2], revenueCents: row[3])
                if !figures.isZero { totals.minutes[row[0]] = figures }
            }
            return totals
        }
    }

    public func positions() async throws -> [String: Int64] {
        try await pool.read { db in try ReadPositions.read(db) }
    }

    public func eventsCounted() async throws -> Int64 {
        try await pool.read { db in try Int64.fetchOne(db, sql: "SELECT value FROM stats_meta WHERE key = 'events_counted'") ?? 0 }
    }

    /// Products sorted by a column, biggest first (by sku for `sku`).
    public func products(sort: ProductSort, limit: Int) async throws -> [(sku: String, figures: ProductFigures)] {
        try await pool.read { db in
            let order = sort == .sku ? "sku ASC" : "\(sort.rawValue) DESC, sku ASC"
            return try Row.fetchAll(
                db, sql: "SELECT sku, units_ordered, units_paid, units_shipped, units_refunded, revenue_cents FROM product_stats ORDER BY \(order) LIMIT ?",
                arguments: [limit]
            ).map { row in
                (row[0], ProductFigures(unitsOrdered: row[1], unitsPaid: row[2], unitsShipped: row[3], unitsRefunded: row[4], revenueCents: row[5]))
            }
        }
    }

    public func product(_ sku: String) async throws -> ProductFigures {
        try await pool.read { db in
            guard let row = try Row.fetchOne(
                db, sql: "SELECT units_ordered, units_paid, units_shipped, units_refunded, revenue_cents FROM product_stats WHERE sku = ?", arguments: [sku])
            else { return ProductFigures() }
            return ProductFigures(unitsOrdered: row[0], unitsPaid: row[1], unitsShipped: row[2], unitsRefunded: row[3], revenueCents: row[4])
        }
    }

    /// Writes a whole projection into an empty file (the rebuild): figures,
    /// the events counted and the positions, in one transaction.
    public func write(totals: StatsTotals, eventsByOrder: [[StatsEvent]], positions: [String: Int64]) async throws {
        try await pool.write { db in
            let existing = try Int64.fetchOne(db, sql: "SELECT count(*) FROM order_events") ?? 0
            guard existing == 0 else { throw StatsError.badInput("\(self.path) is not empty; rebuild into a new file") }
            let insert = try db.makeStatement(sql: """
                INSERT OR IGNORE INTO order_events (event_id, order_id, version, recorded_at, type, payload, term, origin)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """)
            // The order index is built once at the end (a sort), rather than
            // updated by a million random inserts.
            try db.execute(sql: "DROP INDEX order_events_by_order")
            // In event id order, the table (keyed by event id) grows at its
            // end instead of splitting pages all over the file.
            var all = Array(eventsByOrder.joined())
            all.sort { $0.eventID < $1.eventID }
            let handle = insert.sqliteStatement
            let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
            for event in all {
                sqlite3_reset(handle)
                sqlite3_bind_text(handle, 1, event.eventID, -1, transient)
                sqlite3_bind_text(handle, 2, event.orderID, -1, transient)
                sqlite3_bind_int64(handle, 3, event.version)
                sqlite3_bind_int64(handle, 4, event.recordedAtMs)
                sqlite3_bind_text(handle, 5, event.event.typeName, -1, transient)
                sqlite3_bind_text(handle, 6, event.event.payloadJSON(after: event.after), -1, transient)
                sqlite3_bind_int64(handle, 7, event.term.number)
                sqlite3_bind_text(handle, 8, event.term.leader, -1, transient)
                let code = sqlite3_step(handle)
                guard code == SQLITE_DONE else {
                    throw DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
                }
            }
            let count = all.count
            try db.execute(sql: "CREATE INDEX order_events_by_order ON order_events (order_id)")
            try Self.add(totals, db)
            try db.execute(sql: "UPDATE stats_meta SET value = ? WHERE key = 'events_counted'", arguments: [count])
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            for (origin, through) in positions {
                try db.execute(
                    sql: "INSERT INTO positions (origin, through_offset, updated_at) VALUES (?, ?, ?)", arguments: [origin, through, now])
            }
        }
    }
}

public enum ProductSort: String, Sendable, CaseIterable {
    case revenue = "revenue_cents"
    case unitsOrdered = "units_ordered"
    case unitsPaid = "units_paid"
    case unitsShipped = "units_shipped"
    case sku

    /// From the query parameter: revenue, units_ordered, units_paid, units_shipped, sku.
    public init?(query: String) {
        switch query {
        case "revenue": self = .revenue
        case "units_ordered": self = .unitsOrdered
        case "units_paid": self = .unitsPaid
        case "units_shipped": self = .unitsShipped
        case "sku": self = .sku
        default: return nil
        }
    }
}

public enum StatsError: Error, Sendable, CustomStringConvertible {
    case badInput(String)
    public var description: String {
        switch self { case .badInput(let message): return message }
    }
}
