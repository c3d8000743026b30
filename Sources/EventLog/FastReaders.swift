import Foundation
import GRDBSQLite

/// Read-only SQLite connections of the log's own, for the reads a node
/// makes for every command and every follower's fetch: an order's checkpoint
/// and events, a log's events from an offset. Each read runs in one
/// transaction on the calling thread through statements prepared once per
/// connection. GRDB's reads cost more than these queries themselves here
/// (a reader pool hand-off, BEGIN and COMMIT prepared anew, a schema-version
/// query each time): about a tenth of a replicated command's CPU.
///
/// Connections are opened on demand, kept while at most `idleMax` are idle,
/// and each serves one read at a time. Thread-safe.
final class FastReaders: @unchecked Sendable {
    private let path: String
    private let lock = NSLock()
    private var idle: [FastReader] = []
    private var closed = false
    static let idleMax = 4
    /// None: a connection reads pages through read(2). SQLite unmaps the
    /// whole file at the start of every read transaction that finds the WAL
    /// changed (always, under load), then maps it again and faults its
    /// pages back in; that cost about 400 munmap calls a second a node under
    /// `bench replicate`, each one flushing the other core's TLB.
    static let mapBytes: Int64 = 0

    init(path: String) {
        self.path = path
    }

    /// Runs `body` in a read transaction of a connection of its own.
    func read<T>(_ body: (FastReader) throws -> T) throws -> T {
        let reader = try take()
        defer { give(reader) }
        return try reader.inTransaction { try body(reader) }
    }

    func close() {
        let readers = lock.withLock {
            closed = true
            defer { idle = [] }
            return idle
        }
        for reader in readers { reader.close() }
    }

    private func take() throws -> FastReader {
        if let reader = lock.withLock({ closed ? nil : idle.popLast() }) { return reader }
        if lock.withLock({ closed }) { throw EventLogError.closed }
        return try FastReader(path: path)
    }

    private func give(_ reader: FastReader) {
        let keep = lock.withLock { () -> Bool in
            guard !closed, idle.count < Self.idleMax else { return false }
            idle.append(reader)
            return true
        }
        if !keep { reader.close() }
    }
}

/// One read-only connection and its prepared statements. Used by one
/// thread at a time (FastReaders hands it out).
final class FastReader {
    private var db: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]

    init(path: String) throws {
        var handle: OpaquePointer?
        let code = sqlite3_open_v2(path, &handle, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nil)
        guard code == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "code \(code)"
            sqlite3_close_v2(handle)
            throw EventLogError.readFailed("cannot open \(path) for reading: \(message)")
        }
        db = handle
        sqlite3_busy_timeout(handle, 5000)
        sqlite3_exec(handle, "PRAGMA mmap_size = \(FastReaders.mapBytes)", nil, nil, nil)
    }

    func close() {
        for statement in statements.values { sqlite3_finalize(statement) }
        statements = [:]
        sqlite3_close_v2(db)
        db = nil
    }

    deinit { if db != nil { close() } }

    func inTransaction<T>(_ body: () throws -> T) throws -> T {
        try step(statement("BEGIN DEFERRED TRANSACTION"))
        do {
            let value = try body()
            try step(statement("COMMIT TRANSACTION"))
            return value
        } catch {
            _ = try? step(statement("ROLLBACK TRANSACTION"))
            throw error
        }
    }

    /// The statement for `sql`, prepared once.
    func statement(_ sql: String) throws -> OpaquePointer {
        if let statement = statements[sql] { return statement }
        var statement: OpaquePointer?
        let code = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard code == SQLITE_OK, let statement else { throw failure("prepare \(sql)") }
        statements[sql] = statement
        return statement
    }

    /// Runs `statement` with `bind`'s arguments, mapping each row.
    func rows<T>(_ statement: OpaquePointer, bind: (OpaquePointer) -> Void, _ row: (OpaquePointer) throws -> T) throws -> [T] {
        sqlite3_reset(statement)
        sqlite3_clear_bindings(statement)
        bind(statement)
        var values: [T] = []
        while true {
            let code = sqlite3_step(statement)
            if code == SQLITE_DONE { break }
            guard code == SQLITE_ROW else { throw failure("step") }
            values.append(try row(statement))
        }
        sqlite3_reset(statement)
        return values
    }

    private func step(_ statement: OpaquePointer) throws {
        sqlite3_reset(statement)
        let code = sqlite3_step(statement)
        sqlite3_reset(statement)
        guard code == SQLITE_DONE || code == SQLITE_ROW else { throw failure("step") }
    }

    private func failure(_ what: String) -> EventLogError {
        EventLogError.readFailed("\(what): \(db.map { String(cString: sqlite3_errmsg($0)) } ?? "closed")")
    }

    // MARK: Columns and bindings

    static func bind(_ statement: OpaquePointer, _ index: Int32, _ text: String) {
        sqlite3_bind_text(statement, index, text, -1, sqliteTransient)
    }

    static func text(_ statement: OpaquePointer, _ column: Int32) -> String {
        guard let bytes = sqlite3_column_text(statement, column) else { return "" }
        return String(decoding: UnsafeBufferPointer(start: bytes, count: Int(sqlite3_column_bytes(statement, column))), as: UTF8.self)
    }

    /// A row of `EventRecord.columns`.
    static func record(_ statement: OpaquePointer) -> EventRecord {
        EventRecord(
            origin: text(statement, 0), offset: sqlite3_column_int64(statement, 1), orderID: text(statement, 2),
            version: sqlite3_column_int64(statement, 3), type: text(statement, 4), payload: text(statement, 5),
            eventID: text(statement, 6), recordedAt: sqlite3_column_int64(statement, 7), term: sqlite3_column_int64(statement, 8),
            checksum: UInt32(truncatingIfNeeded: sqlite3_column_int64(statement, 9)))
    }
}

/// SQLite copies text bound with this destructor (the Swift string's
/// storage does not outlive the call).
private let sqliteTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
