import Foundation
import GRDB

/// The `positions` table of a role that reads the cluster's logs (stats,
/// warehouse): per origin, how far it has taken that log. Moved in the same
/// transaction as what the role made of the events, never backwards.
public enum ReadPositions {
    public static let schema = """
        CREATE TABLE positions (origin TEXT PRIMARY KEY, through_offset INTEGER NOT NULL, updated_at INTEGER NOT NULL);
        """

    public static func advance(origin: String, through: Int64, in db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO positions (origin, through_offset, updated_at) VALUES (?, ?, ?)
                ON CONFLICT(origin) DO UPDATE SET through_offset = excluded.through_offset, updated_at = excluded.updated_at
                WHERE excluded.through_offset > positions.through_offset
                """,
            arguments: [origin, through, Int64(Date().timeIntervalSince1970 * 1000)])
    }

    public static func read(_ db: Database) throws -> [String: Int64] {
        var positions: [String: Int64] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT origin, through_offset FROM positions") { positions[row[0]] = row[1] }
        return positions
    }
}
