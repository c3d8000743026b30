import Foundation
import GRDB

/// Consistent copies of a node's SQLite files while the node runs (online
/// backup), and what a copy holds: the log's identity and positions.
public enum Snapshot {
    /// What a copied file holds. Fields a file does not have (a stats or
    /// warehouse file has no log) are nil.
    public struct Facts: Codable, Sendable, Equatable {
        /// The node that owns the log (`log_meta.node`).
        public var node: String?
        /// The log's random id (`log_meta.log_id`): a restored log keeps it.
        public var logID: String?
        /// The newest offset of the node's own log in the copy.
        public var ownLastOffset: Int64?
        /// Per origin whose log the node copies: how far the copy reaches.
        public var positions: [String: Int64]?
        /// Events in the file (own and copies).
        public var events: Int64?
    }

    /// Copies the SQLite database at `source` to `destination` (which must
    /// not exist) as one consistent snapshot: `VACUUM INTO` in one read
    /// transaction on a read-only connection, so a node writing the file
    /// meanwhile is neither blocked nor seen half-way. The copy is a single
    /// file (no WAL). Returns what the copy holds.
    public static func copy(_ source: String, to destination: String) throws -> Facts {
        guard FileManager.default.fileExists(atPath: source) else { throw EventLogError.noLogFile(path: source) }
        guard !FileManager.default.fileExists(atPath: destination) else {
            throw SnapshotError("\(destination) exists already; a snapshot never overwrites a file")
        }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(10)
        let queue = try DatabaseQueue(path: source, configuration: configuration)
        try queue.inDatabase { db in try db.execute(sql: "VACUUM INTO ?", arguments: [destination]) }
        try queue.close()
        // The snapshot read every committed transaction, some maybe not yet
        // fsynced by the node: a power cut could still take them from its
        // file, and it would write other events at their offsets, which a
        // restore of this backup would bring back. Made durable now.
        for file in [source + "-wal", source] where FileManager.default.fileExists(atPath: file) {
            try syncFile(file)
        }
        try syncFile(destination)
        return try facts(of: destination)
    }

    /// fsync(2) of a file, through a descriptor of this process (it
    /// flushes what any process wrote to it).
    static func syncFile(_ path: String) throws {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { throw SnapshotError("cannot open \(path) to fsync it: errno \(errno)") }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw SnapshotError("fsync of \(path) failed: errno \(errno)") }
    }

    /// What the SQLite file at `path` holds (read-only).
    public static func facts(of path: String) throws -> Facts {
        var configuration = Configuration()
        configuration.readonly = true
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        defer { try? queue.close() }
        return try queue.read { db in
            guard try db.tableExists("log_meta"), try db.tableExists("events") else { return Facts() }
            let node = try String.fetchOne(db, sql: "SELECT value FROM log_meta WHERE key = 'node'")
            let logID = try String.fetchOne(db, sql: "SELECT value FROM log_meta WHERE key = 'log_id'")
            let own = try Int64.fetchOne(db, sql: #"SELECT MAX("offset") FROM events WHERE origin = ?"#, arguments: [node ?? ""]) ?? 0
            var positions: [String: Int64] = [:]
            if try db.tableExists("replica_positions") {
                for row in try Row.fetchAll(db, sql: "SELECT origin, through_offset FROM replica_positions") {
                    positions[row["origin"]] = row["through_offset"]
                }
            }
            let events = try Int64.fetchOne(db, sql: "SELECT COUNT(*) FROM events") ?? 0
            return Facts(node: node, logID: logID, ownLastOffset: own, positions: positions, events: events)
        }
    }

    /// Prepares a log file put back from a backup for its node's start:
    /// when the log belonged to a cluster (it copied peers' logs or
    /// recorded a ring), its owner's own events, their index rows and every
    /// checkpoint are removed. The backup may hold own events of a timeline
    /// the node abandoned since (an earlier restore of an older backup)
    /// at offsets it has used again for acknowledged writes; with no own
    /// events the node takes its own log back from its peers' copies, as
    /// after a replaced disk, and the backup still spares it copying the
    /// others' logs. A log of a node without peers is left whole (there is
    /// no other copy). Returns the own events removed, nil for a file that
    /// is not a log or a log left whole.
    public static func forgetOwnLog(_ path: String) throws -> Int? {
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        return try queue.write { db -> Int? in
            guard try db.tableExists("log_meta"), let node = try String.fetchOne(db, sql: "SELECT value FROM log_meta WHERE key = 'node'")
            else { return nil }
            let peers = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM replica_positions") ?? 0
            let ring = try db.tableExists("ring_members") ? try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM ring_members WHERE node <> ?", arguments: [node]) ?? 0 : 0
            guard peers + ring > 0 else { return nil }
            try db.execute(sql: #"DELETE FROM events WHERE origin = ?"#, arguments: [node])
            let removed = db.changesCount
            if try db.tableExists("order_index") {
                try db.execute(sql: #"DELETE FROM order_index WHERE origin = ?"#, arguments: [node])
            }
            try db.execute(sql: "DELETE FROM checkpoints")
            try db.execute(sql: "DELETE FROM log_meta WHERE key IN ('offset_floor', 'indexed_through')")
            return removed
        }
    }

    /// Whether the file at `path` is an intact SQLite database
    /// (`PRAGMA integrity_check`).
    public static func integrityProblems(of path: String) throws -> [String] {
        var configuration = Configuration()
        configuration.readonly = true
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        defer { try? queue.close() }
        let lines = try queue.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
        return lines == ["ok"] ? [] : lines
    }
}

public struct SnapshotError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
