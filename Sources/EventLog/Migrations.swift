import GRDB

/// One numbered schema step from the top-level `migrations/` folder.
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let sql: String
}

/// Applies the shipped migrations in order and records each one in
/// `schema_migrations`, in the same transaction as the step itself.
public enum Migrations {
    public static var all: [Migration] { embedded }

    /// Applies every migration not yet recorded. Refuses a file written by a
    /// newer release (it holds a migration this build does not know).
    static func apply(_ db: Database, migrations: [Migration] = embedded, nowMs: Int64) throws {
        try db.execute(sql: """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    INTEGER PRIMARY KEY,
                name       TEXT    NOT NULL,
                applied_at INTEGER NOT NULL
            )
            """)
        let applied = try Int.fetchSet(db, sql: "SELECT version FROM schema_migrations")
        let known = Set(migrations.map(\.version))
        if let unknown = applied.subtracting(known).min() {
            throw EventLogError.schemaTooNew(version: unknown)
        }
        for migration in migrations where !applied.contains(migration.version) {
            try db.inSavepoint {
                try db.execute(sql: migration.sql)
                try db.execute(
                    sql: "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    arguments: [migration.version, migration.name, nowMs])
                return .commit
            }
        }
    }
}
