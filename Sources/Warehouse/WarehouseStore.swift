import EventLog
import Foundation
import GRDB
import Node
import OrderDomain

/// What the warehouse knows of an order.
public enum ShipmentState: String, Sendable, CaseIterable {
    /// Placed, not paid yet.
    case waiting
    /// Paid: ships once its handling time is over.
    case ready
    /// Stock taken, shipment id chosen; the shipment is being recorded
    /// through the API (retried with the same id until it answers).
    case reserved
    case shipped
    /// Not enough stock: waits, explicitly, for stock (`GET /wms/orders/{id}`
    /// says what is missing); it is not retried on its own.
    case backordered
    case cancelled
}

/// `DATA/wms/wms.sqlite`: the orders followed, the stock per SKU, and how
/// far each origin's log has been read. An event batch and the position
/// commit together; a reservation (stock taken, shipment id fixed) commits
/// before the shipment is sent, so after any crash the same shipment is
/// retried and the API, idempotent by shipment id, records it once.
public final class WarehouseStore: LogSink, Sendable {
    private let pool: DatabasePool

    static let schema = """
        CREATE TABLE orders (
            order_id TEXT PRIMARY KEY,
            lines TEXT,
            paid_at INTEGER,
            state TEXT NOT NULL,
            shipment_id TEXT,
            detail TEXT,
            updated_at INTEGER NOT NULL
        );
        CREATE INDEX orders_by_state ON orders (state, paid_at);
        CREATE TABLE stock (sku TEXT PRIMARY KEY, on_hand INTEGER NOT NULL);
        """

    public init(path: String, catalog: Catalog) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        pool = try DatabasePool(path: path, configuration: configuration)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("0001_wms") { db in
            try db.execute(sql: ReadPositions.schema + Self.schema)
            let insert = try db.makeStatement(sql: "INSERT INTO stock (sku, on_hand) VALUES (?, ?)")
            for product in catalog.all { try insert.execute(arguments: [product.sku, product.stock]) }
        }
        try migrator.migrate(pool)
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    // MARK: Following the logs

    public func apply(_ records: [EventRecord], origin: String, through: Int64?) async throws -> Int {
        var facts: [(record: EventRecord, event: OrderEvent)] = []
        for record in records where Self.relevant.contains(record.type) {
            facts.append((record, try OrderEvent.decode(typeName: record.type, payload: record.payload)))
        }
        let taken = facts
        return try await pool.write { db in
            for (record, event) in taken { try Self.note(event, of: record.orderID, at: record.recordedAt, db) }
            if let through { try ReadPositions.advance(origin: origin, through: through, in: db) }
            return taken.count
        }
    }

    static let relevant: Set<String> = ["OrderPlaced", "OrderPaid", "OrderCancelled", "OrderShipped"]

    /// One fact of an order. Each transition only moves forward, so a fact
    /// seen twice changes nothing the second time.
    static func note(_ event: OrderEvent, of orderID: String, at recordedAt: Int64, _ db: Database) throws {
        try db.execute(
            sql: "INSERT OR IGNORE INTO orders (order_id, state, updated_at) VALUES (?, 'waiting', ?)", arguments: [orderID, now()])
        let state = try String.fetchOne(db, sql: "SELECT state FROM orders WHERE order_id = ?", arguments: [orderID]).flatMap(ShipmentState.init) ?? .waiting
        switch event {
        case .orderPlaced(_, let lines, _):
            let text = lines.map { "\($0.sku)=\($0.qty)" }.joined(separator: ",")
            try db.execute(sql: "UPDATE orders SET lines = ? WHERE order_id = ? AND lines IS NULL", arguments: [text, orderID])
        case .orderPaid:
            try db.execute(sql: "UPDATE orders SET paid_at = coalesce(paid_at, ?) WHERE order_id = ?", arguments: [recordedAt, orderID])
            if state == .waiting { try set(orderID, .ready, db) }
        case .orderCancelled:
            // A reserved order is settled by the API's answer to its shipment.
            if [.waiting, .ready, .backordered].contains(state) { try set(orderID, .cancelled, db) }
        case .orderShipped(let shipmentID):
            guard state != .shipped else { return }
            let ours = try String.fetchOne(db, sql: "SELECT shipment_id FROM orders WHERE order_id = ?", arguments: [orderID])
            if state == .reserved && ours != shipmentID.rawValue { try release(orderID, db) }
            try db.execute(sql: "UPDATE orders SET shipment_id = ? WHERE order_id = ?", arguments: [shipmentID.rawValue, orderID])
            try set(orderID, .shipped, db)
        default:
            break
        }
    }

    static func set(_ orderID: String, _ state: ShipmentState, detail: String? = nil, _ db: Database) throws {
        try db.execute(
            sql: "UPDATE orders SET state = ?, detail = ?, updated_at = ? WHERE order_id = ?", arguments: [state.rawValue, detail, now(), orderID])
    }

    /// Puts back the stock a reservation took.
    static func release(_ orderID: String, _ db: Database) throws {
        let lines = try String.fetchOne(db, sql: "SELECT lines FROM orders WHERE order_id = ?", arguments: [orderID]) ?? ""
        for (sku, qty) in parse(lines) {
            try db.execute(sql: "UPDATE stock SET on_hand = on_hand + ? WHERE sku = ?", arguments: [qty, sku])
        }
    }

    static func parse(_ lines: String) -> [(String, Int)] {
        lines.split(separator: ",").compactMap { item in
            let parts = item.split(separator: "=")
            guard parts.count == 2, let qty = Int(parts[1]) else { return nil }
            return (String(parts[0]), qty)
        }
    }

    public func positions() async throws -> [String: Int64] {
        try await pool.read { db in try ReadPositions.read(db) }
    }

    // MARK: Shipping

    /// Paid orders whose handling time is over: takes their stock and fixes
    /// their shipment id, or backorders them with what is missing. Returns
    /// how many were reserved.
    public func reserveDue(handlingMs: Int64, limit: Int = 200) async throws -> Int {
        try await pool.write { db in
            let due = try Row.fetchAll(
                db, sql: "SELECT order_id, lines FROM orders WHERE state = 'ready' AND lines IS NOT NULL AND paid_at <= ? ORDER BY paid_at LIMIT ?",
                arguments: [Self.now() - handlingMs, limit])
            var reserved = 0
            for row in due {
                let orderID: String = row[0]
                let lines = Self.parse(row[1])
                var missing: [String] = []
                for (sku, qty) in lines {
                    let onHand = try Int.fetchOne(db, sql: "SELECT on_hand FROM stock WHERE sku = ?", arguments: [sku]) ?? 0
                    if onHand < qty { missing.append("\(sku): \(qty) needed, \(onHand) on hand") }
                }
                guard missing.isEmpty else {
                    try Self.set(orderID, .backordered, detail: "out of stock: " + missing.joined(separator: "; "), db)
                    continue
                }
                for (sku, qty) in lines {
                    try db.execute(sql: "UPDATE stock SET on_hand = on_hand - ? WHERE sku = ?", arguments: [qty, sku])
                }
                try db.execute(sql: "UPDATE orders SET shipment_id = ? WHERE order_id = ?", arguments: [Self.shipmentID(for: orderID), orderID])
                try Self.set(orderID, .reserved, db)
                reserved += 1
            }
            return reserved
        }
    }

    /// The one shipment id an order ever gets from this warehouse: a retry
    /// after a crash sends the same id, which the API takes once.
    static func shipmentID(for orderID: String) -> String {
        let id = "wms-" + orderID
        return id.utf8.count <= 64 ? id : "wms-" + String(orderID.suffix(60))
    }

    public func reserved(limit: Int = 100) async throws -> [(orderID: String, shipmentID: String)] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT order_id, shipment_id FROM orders WHERE state = 'reserved' ORDER BY updated_at LIMIT ?", arguments: [limit])
                .map { ($0[0], $0[1]) }
        }
    }

    /// The API recorded the shipment (or had recorded it before).
    public func shipped(_ orderID: String) async throws {
        try await pool.write { db in
            if try String.fetchOne(db, sql: "SELECT state FROM orders WHERE order_id = ?", arguments: [orderID]) == ShipmentState.reserved.rawValue {
                try Self.set(orderID, .shipped, db)
            }
        }
    }

    /// The API refused the shipment for good (the order was cancelled, or
    /// shipped under another id): the stock goes back.
    public func refused(_ orderID: String, becomes state: ShipmentState, detail: String) async throws {
        try await pool.write { db in
            guard try String.fetchOne(db, sql: "SELECT state FROM orders WHERE order_id = ?", arguments: [orderID]) == ShipmentState.reserved.rawValue else { return }
            try Self.release(orderID, db)
            try Self.set(orderID, state, detail: detail, db)
        }
    }

    /// Goods received: adds `units` to the SKU's stock, and puts every
    /// backordered order that needs the SKU back to ready, in one
    /// transaction. The next pass reserves them in the order they were
    /// paid, or backorders them again with what is still missing. nil when
    /// the SKU is unknown.
    public func restock(_ sku: String, units: Int) async throws -> (onHand: Int, released: Int)? {
        try await pool.write { db in
            guard try Int.fetchOne(db, sql: "SELECT on_hand FROM stock WHERE sku = ?", arguments: [sku]) != nil else { return nil }
            try db.execute(sql: "UPDATE stock SET on_hand = on_hand + ? WHERE sku = ?", arguments: [units, sku])
            var released = 0
            for row in try Row.fetchAll(db, sql: "SELECT order_id, lines FROM orders WHERE state = 'backordered'") {
                let lines: String = row[1]
                guard Self.parse(lines).contains(where: { $0.0 == sku }) else { continue }
                try Self.set(row[0], .ready, db)
                released += 1
            }
            return (try Int.fetchOne(db, sql: "SELECT on_hand FROM stock WHERE sku = ?", arguments: [sku]) ?? 0, released)
        }
    }

    // MARK: Reading

    public func counts() async throws -> [String: Int] {
        try await pool.read { db in
            var counts: [String: Int] = [:]
            for state in ShipmentState.allCases { counts[state.rawValue] = 0 }
            for row in try Row.fetchAll(db, sql: "SELECT state, count(*) FROM orders GROUP BY state") { counts[row[0]] = row[1] }
            return counts
        }
    }

    public func order(_ orderID: String) async throws -> (state: String, shipmentID: String?, detail: String?)? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT state, shipment_id, detail FROM orders WHERE order_id = ?", arguments: [orderID]).map { ($0[0], $0[1], $0[2]) }
        }
    }

    public func stock(_ sku: String) async throws -> Int? {
        try await pool.read { db in try Int.fetchOne(db, sql: "SELECT on_hand FROM stock WHERE sku = ?", arguments: [sku]) }
    }
}
