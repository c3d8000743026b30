import Checksum
import GRDB
import GRDBSQLite

/// One row of `events` as the bytes SQLite holds, for readers that go
/// through millions of rows without making a String of every column. The
/// buffers are valid only until the cursor moves on.
public struct RawEventRow {
    public let offset: Int64
    public let version: Int64
    public let recordedAt: Int64
    public let orderID: UnsafeRawBufferPointer
    public let type: UnsafeRawBufferPointer
    public let payload: UnsafeRawBufferPointer
    public let eventID: UnsafeRawBufferPointer
    /// The term the event was decided in (0: none).
    public let term: Int64
}

/// Steps one statement over an origin's rows in offset order, verifying
/// each row's checksum on its bytes (the same sum as
/// `EventRecord.computedChecksum`): a corrupt row throws `corruptEvent`
/// with its position, as every other read does.
public struct EventRowCursor: ~Copyable {
    private let statement: Statement
    private let origin: String

    fileprivate init(statement: Statement, origin: String) {
        self.statement = statement
        self.origin = origin
    }

    public mutating func next() throws -> RawEventRow? {
        let handle = statement.sqliteStatement
        let code = sqlite3_step(handle)
        if code == SQLITE_DONE { return nil }
        guard code == SQLITE_ROW else {
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(sqlite3_db_handle(handle))))
        }
        func text(_ column: Int32) -> UnsafeRawBufferPointer {
            guard let bytes = sqlite3_column_text(handle, column) else { return UnsafeRawBufferPointer(start: nil, count: 0) }
            return UnsafeRawBufferPointer(start: bytes, count: Int(sqlite3_column_bytes(handle, column)))
        }
        // Columns as in `EventRecord.columns`.
        let originBytes = text(0)
        let term = sqlite3_column_int64(handle, 8)
        let row = RawEventRow(
            offset: sqlite3_column_int64(handle, 1), version: sqlite3_column_int64(handle, 3), recordedAt: sqlite3_column_int64(handle, 7),
            orderID: text(2), type: text(4), payload: text(5), eventID: text(6), term: term)
        let stored = UInt32(truncatingIfNeeded: sqlite3_column_int64(handle, 9))
        var crc = CRC32C.Accumulator()
        func add(_ column: UnsafeRawBufferPointer) {
            crc.update(Int64(column.count))
            crc.update(column)
        }
        add(originBytes)
        add(row.orderID)
        add(row.type)
        add(row.payload)
        add(row.eventID)
        crc.update(row.offset)
        crc.update(row.version)
        crc.update(row.recordedAt)
        crc.update(term)
        guard crc.value == stored else {
            throw EventLogError.corruptEvent(origin: origin, offset: row.offset, orderID: String(decoding: row.orderID, as: UTF8.self))
        }
        return row
    }
}

extension EventLog {
    /// Runs `body` over the rows of `origin` from `fromOffset` through
    /// `throughOffset`, in one read transaction on a reader connection.
    public func withEventRows<T: Sendable>(
        origin: String, fromOffset: Int64 = 1, throughOffset: Int64 = .max,
        _ body: @escaping @Sendable (inout EventRowCursor) throws -> T
    ) async throws -> T {
        try await reader.read { db in
            let statement = try db.makeStatement(
                sql: "SELECT \(EventRecord.columns) FROM events WHERE origin = ? AND \"offset\" BETWEEN ? AND ? ORDER BY \"offset\"")
            try statement.setArguments([origin, fromOffset, throughOffset])
            var cursor = EventRowCursor(statement: statement, origin: origin)
            return try body(&cursor)
        }
    }
}
