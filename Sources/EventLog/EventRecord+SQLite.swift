import GRDB
import GRDBSQLite
import LogStorage

/// How an `EventRecord` goes in and out of SQLite.
extension EventRecord {
    static let columns = columns(prefix: "")
    /// Built once: the writer looks its statement up by this text per append.
    static let insertSQL = "INSERT INTO events (\(columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    static let insertOrIgnoreSQL = "INSERT OR IGNORE INTO events (\(columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

    static func columns(prefix: String) -> String {
        ["origin", "\"offset\"", "order_id", "version", "type", "payload", "event_id", "recorded_at", "term", "checksum"]
            .map { prefix + $0 }.joined(separator: ", ")
    }

    /// Binds the row straight to SQLite: the hot path of every append, where
    /// GRDB's general argument handling cost more than the insert itself.
    func insert(using statement: Statement, _ db: Database) throws {
        let handle = statement.sqliteStatement
        // The text is bound in place (SQLITE_STATIC), without the copy
        // SQLite makes of transient text or the temporary C string an
        // implicit bridge makes: the pointers live only inside `withText`,
        // so the step runs there and the bindings are cleared after it.
        let code = Self.withText(origin) { origin in
            Self.withText(orderID) { orderID in
                Self.withText(type) { type in
                    Self.withText(payload) { payload in
                        Self.withText(eventID) { eventID in
                            sqlite3_reset(handle)
                            Self.bind(handle, 1, origin)
                            sqlite3_bind_int64(handle, 2, offset)
                            Self.bind(handle, 3, orderID)
                            sqlite3_bind_int64(handle, 4, version)
                            Self.bind(handle, 5, type)
                            Self.bind(handle, 6, payload)
                            Self.bind(handle, 7, eventID)
                            sqlite3_bind_int64(handle, 8, recordedAt)
                            sqlite3_bind_int64(handle, 9, term)
                            sqlite3_bind_int64(handle, 10, Int64(checksum))
                            let code = sqlite3_step(handle)
                            sqlite3_clear_bindings(handle)
                            return code
                        }
                    }
                }
            }
        }
        guard code == SQLITE_DONE else {
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
        }
    }

    static func withText<R>(_ text: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        var text = text
        return text.withUTF8(body)
    }

    /// An empty buffer may have no address, and NULL would bind SQL NULL.
    static func bind(_ handle: OpaquePointer?, _ index: Int32, _ bytes: UnsafeBufferPointer<UInt8>) {
        let empty: StaticString = ""
        let start = UnsafeRawPointer(bytes.baseAddress ?? empty.utf8Start).assumingMemoryBound(to: CChar.self)
        sqlite3_bind_text(handle, index, start, Int32(bytes.count), nil)  // nil: SQLITE_STATIC
    }

    init(row: Row) {
        let stored: Int64 = row[9]
        self.init(
            origin: row[0], offset: row[1], orderID: row[2], version: row[3], type: row[4], payload: row[5], eventID: row[6],
            recordedAt: row[7], term: row[8], checksum: UInt32(truncatingIfNeeded: stored))
    }
}
