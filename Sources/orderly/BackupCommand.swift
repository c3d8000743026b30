import ArgumentParser
import Crypto
import EventLog
import Foundation

/// `backup.json`: what a backup holds, written last (a backup without it
/// is incomplete and `restore` refuses it).
struct BackupManifest: Codable {
    struct File: Codable {
        /// Relative to the backup folder and to the data folder: `ID/NAME.sqlite`.
        var path: String
        var bytes: Int64
        var sha256: String
        /// The log's identity and positions (nil for stats and warehouse files).
        var node: String?
        var logID: String?
        var ownLastOffset: Int64?
        var positions: [String: Int64]?
        var events: Int64?

        enum CodingKeys: String, CodingKey {
            case path, bytes, sha256, node, positions, events
            case logID = "log_id"
            case ownLastOffset = "own_last_offset"
        }
    }
    var format = 1
    var createdAtMs: Int64
    var source: String
    var files: [File]

    enum CodingKeys: String, CodingKey {
        case format, source, files
        case createdAtMs = "created_at_ms"
    }

    static let name = "backup.json"

    static func sha256(of path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw ValidationError("cannot read \(path)") }
        defer { try? handle.close() }
        var hash = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hash.update(data: chunk) }
        return hash.finalize().map { String(format: "%02x", $0) }.joined()
    }

    static func size(of path: String) throws -> Int64 {
        (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? 0
    }
}

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Copy every node's log (and the stats and warehouse files) while the cluster runs.",
        discussion: """
            Each SQLite file under DATA (DATA/ID/*.sqlite: every API node's log.sqlite,
            stats/stats.sqlite, wms/wms.sqlite) is copied to DEST/ID/ as one consistent
            snapshot (SQLite's VACUUM INTO on a read-only connection: the running node is
            not stopped or blocked). DEST/backup.json, written last, lists each file with
            its size, SHA-256, and for a log its node, log id, own newest offset and copy
            positions. The last line of output is JSON: {"files","bytes","to"}.
            Restore with `orderly restore`.
            """)

    @Option(help: "Data folder of the cluster (DATA/ID/log.sqlite, ...).")
    var data: String

    @Option(help: "Backup folder to create (must not exist, or be empty).")
    var to: String

    func run() async throws {
        let manager = FileManager.default
        var isFolder: ObjCBool = false
        guard manager.fileExists(atPath: data, isDirectory: &isFolder), isFolder.boolValue else {
            throw ValidationError("no data folder at \(data)")
        }
        if manager.fileExists(atPath: to) {
            guard (try? manager.contentsOfDirectory(atPath: to))?.isEmpty == true else {
                throw ValidationError("\(to) exists and is not an empty folder; a backup never overwrites one")
            }
        }
        let sources = try Self.files(in: data)
        guard !sources.isEmpty else { throw ValidationError("no SQLite files (ID/*.sqlite) in \(data)") }
        try manager.createDirectory(atPath: to, withIntermediateDirectories: true)
        var files: [BackupManifest.File] = []
        for relative in sources {
            let started = ContinuousClock.now
            let source = (data as NSString).appendingPathComponent(relative)
            let destination = (to as NSString).appendingPathComponent(relative)
            try manager.createDirectory(atPath: (destination as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let facts = try Snapshot.copy(source, to: destination)
            let file = BackupManifest.File(
                path: relative, bytes: try BackupManifest.size(of: destination), sha256: try BackupManifest.sha256(of: destination),
                node: facts.node, logID: facts.logID, ownLastOffset: facts.ownLastOffset, positions: facts.positions, events: facts.events)
            files.append(file)
            let elapsed = started.duration(to: .now)
            var line = "\(relative): \(file.bytes.formatted()) bytes"
            if let node = facts.node, let logID = facts.logID {
                line += ", \((facts.events ?? 0).formatted()) events, \(node)'s log \(logID) through offset \((facts.ownLastOffset ?? 0).formatted())"
            }
            print("\(line) (\(elapsed.formatted(.units(allowed: [.seconds, .milliseconds], width: .narrow))))")
        }
        let manifest = BackupManifest(
            createdAtMs: Int64(Date().timeIntervalSince1970 * 1000), source: (data as NSString).standardizingPath, files: files)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let manifestPath = (to as NSString).appendingPathComponent(BackupManifest.name)
        try encoder.encode(manifest).write(to: URL(fileURLWithPath: manifestPath + ".tmp"))
        try manager.moveItem(atPath: manifestPath + ".tmp", toPath: manifestPath)
        let total = files.reduce(0) { $0 + $1.bytes }
        print(#"{"files": \#(files.count), "bytes": \#(total), "to": "\#(to)"}"#)
    }

    /// `ID/NAME.sqlite` of every SQLite file one level down in `data`.
    static func files(in data: String) throws -> [String] {
        let manager = FileManager.default
        var found: [String] = []
        for folder in try manager.contentsOfDirectory(atPath: data).sorted() {
            let path = (data as NSString).appendingPathComponent(folder)
            var isFolder: ObjCBool = false
            guard manager.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue else { continue }
            for name in try manager.contentsOfDirectory(atPath: path).sorted() where name.hasSuffix(".sqlite") {
                found.append("\(folder)/\(name)")
            }
        }
        return found
    }
}

struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Put files of a backup back into a data folder (stop those nodes first).",
        discussion: """
            Checks every file of the backup against DEST/backup.json (size, SHA-256,
            SQLite integrity) before it touches anything, then copies the chosen files
            (all, or --node ID ... only) into DATA/ID/. A file already there is kept
            and the restore refused, unless --force (its -wal and -shm go too).
            A restored API node of a cluster keeps its log id and its copies of its
            peers' logs, but not its own events: the backup may hold some of a timeline
            the node abandoned since (an earlier restore of an older backup), at offsets
            it has used again. When it starts it takes its own log back from its peers'
            copies, as after a replaced disk (waiting for every member of its ring), moves
            past every offset they hold, and copies the orders it replicates before it
            leads anything (log identity; see docs/protocol.md). A node without peers is
            restored whole. The stats node and the warehouse catch up from the logs.
            """)

    @Option(help: "Backup folder (made by `orderly backup`).")
    var from: String

    @Option(help: "Data folder to restore into.")
    var data: String

    @Option(parsing: .upToNextOption, help: "Restore only these ids' files (e.g. api-2).")
    var node: [String] = []

    @Flag(help: "Replace files that exist (the node must be stopped).")
    var force = false

    func run() async throws {
        let manager = FileManager.default
        let manifestPath = (from as NSString).appendingPathComponent(BackupManifest.name)
        guard let bytes = manager.contents(atPath: manifestPath) else {
            throw ValidationError("no \(BackupManifest.name) in \(from): not a backup, or one that did not finish")
        }
        let decoder = JSONDecoder()
        let manifest: BackupManifest
        do {
            manifest = try decoder.decode(BackupManifest.self, from: bytes)
        } catch {
            throw ValidationError("\(manifestPath) is not a backup manifest: \(error)")
        }
        guard manifest.format == 1 else { throw ValidationError("backup format \(manifest.format) is not supported (this build reads 1)") }
        let ids = Set(manifest.files.map { String($0.path.split(separator: "/").first ?? "") })
        if let unknown = node.first(where: { !ids.contains($0) }) {
            throw ValidationError("the backup holds no files of \(unknown) (it has: \(ids.sorted().joined(separator: ", ")))")
        }
        let chosen = manifest.files.filter { node.isEmpty || node.contains(String($0.path.split(separator: "/").first ?? "")) }
        // Check everything before touching anything.
        for file in chosen {
            guard !file.path.contains(".."), !file.path.hasPrefix("/") else { throw ValidationError("manifest names a path outside: \(file.path)") }
            let source = (from as NSString).appendingPathComponent(file.path)
            guard manager.fileExists(atPath: source) else { throw ValidationError("\(source) is missing from the backup") }
            let size = try BackupManifest.size(of: source)
            guard size == file.bytes else { throw ValidationError("\(source) has \(size) bytes, the manifest says \(file.bytes)") }
            let digest = try BackupManifest.sha256(of: source)
            guard digest == file.sha256 else { throw ValidationError("\(source) is damaged: SHA-256 \(digest), the manifest says \(file.sha256)") }
            let problems = try Snapshot.integrityProblems(of: source)
            guard problems.isEmpty else { throw ValidationError("\(source) fails SQLite's integrity check: \(problems.prefix(3))") }
            let target = (data as NSString).appendingPathComponent(file.path)
            if manager.fileExists(atPath: target) && !force {
                throw ValidationError("\(target) exists; stop that node and pass --force to replace it, or move it away")
            }
        }
        for file in chosen {
            let source = (from as NSString).appendingPathComponent(file.path)
            let target = (data as NSString).appendingPathComponent(file.path)
            try manager.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            for suffix in ["", "-wal", "-shm"] where manager.fileExists(atPath: target + suffix) {
                try manager.removeItem(atPath: target + suffix)
            }
            try? manager.removeItem(atPath: target + ".restoring")
            try manager.copyItem(atPath: source, toPath: target + ".restoring")
            let forgotten = try Snapshot.forgetOwnLog(target + ".restoring")
            try manager.moveItem(atPath: target + ".restoring", toPath: target)
            var line = "restored \(file.path)"
            if let owner = file.node, let logID = file.logID {
                if let forgotten {
                    line += ": \(owner)'s log \(logID), with its copies of its peers' logs; its own \(forgotten.formatted()) events"
                    line += " (through offset \((file.ownLastOffset ?? 0).formatted())) are left out: on start it takes its own log back from its peers' copies"
                } else {
                    line += ": \(owner)'s log \(logID) through offset \((file.ownLastOffset ?? 0).formatted()) (a node without peers: kept whole)"
                }
            }
            print(line)
        }
        print(#"{"restored": \#(chosen.count), "from": "\#(from)"}"#)
    }
}
