import ArgumentParser
import EventLog
import Foundation
import Node
import OrderDomain

struct InspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Read event logs (opened read-only, safe while nodes run).",
        subcommands: [InspectOrder.self, InspectLog.self])
}

/// Where the log files are: `--data` may be a data folder (one sub-folder
/// per node) or one node's folder; `--node` picks one node.
struct LogLocation: ParsableArguments {
    @Option(help: "Data folder (holding NODE/log.sqlite) or one node's folder.")
    var data: String

    @Option(help: "Only this node's log file.")
    var node: String?

    func files() throws -> [(node: String, path: String)] {
        let manager = FileManager.default
        let direct = (data as NSString).appendingPathComponent("log.sqlite")
        if manager.fileExists(atPath: direct) {
            return [((data as NSString).lastPathComponent, direct)]
        }
        var isFolder: ObjCBool = false
        guard manager.fileExists(atPath: data, isDirectory: &isFolder), isFolder.boolValue else {
            throw ValidationError("no data folder at \(data)")
        }
        let nodes = try manager.contentsOfDirectory(atPath: data).sorted().filter { name in
            manager.fileExists(atPath: EventLog.path(data: data, node: name)) && (node == nil || node == name)
        }
        guard !nodes.isEmpty else {
            throw ValidationError(node.map { "no log for node \($0) in \(data)" } ?? "no log files (NODE/log.sqlite) in \(data)")
        }
        return nodes.map { ($0, EventLog.path(data: data, node: $0)) }
    }
}

enum TimelineFormat {
    static func line(_ record: EventRecord, superseded: Bool = false) -> String {
        let time = Date(timeIntervalSince1970: Double(record.recordedAt) / 1000)
        let stamp = time.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
        var mark = record.isIntact ? "" : "   !! CORRUPT: checksum mismatch"
        if superseded { mark += "   (superseded: a newer term decided this version; left out of the order)" }
        let term = record.term > 0 ? "  term \(record.term)" : ""
        return "\(record.origin)#\(record.offset)  v\(record.version)\(term)  \(stamp)  \(record.orderID)  \(record.type)  \(record.payload)\(mark)"
    }
}

struct InspectOrder: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "order",
        abstract: "Print an order's state and its event timeline.")

    @Argument(help: "The order id.")
    var id: String

    @OptionGroup var location: LogLocation

    func run() async throws {
        guard let orderID = ClientID(id) else { throw ValidationError("order id must be 1-64 characters of A-Z a-z 0-9 . _ -") }
        var found = false
        var corrupt = false
        for file in try location.files() {
            let log = try EventLog.openReadOnly(path: file.path)
            let records = try await log.eventsUnverified(orderID: orderID.rawValue)
            guard !records.isEmpty else { continue }
            found = true
            print("== \(file.node): \(file.path)")
            var stream: [StreamEvent] = []
            for record in records where record.isIntact {
                if let event = try? record.streamEvent() { stream.append(event) }
            }
            let superseded = OrderMerge.superseded(base: OrderState(orderID: orderID), stream)
            for record in records {
                print("  " + TimelineFormat.line(record, superseded: superseded.contains(record.eventID)))
                if !record.isIntact { corrupt = true }
            }
            // Folded as the node folds it: every copy, in the canonical order,
            // without the superseded events.
            let state = OrderMerge.fold(OrderState(orderID: orderID), stream)
            let status = state.status?.rawValue ?? "not placed"
            print("  state: \(status), total \(state.totalCents) cents, paid \(state.paidCents) cents, \(state.payments.count) payment(s), version \(state.version)")
            for conflict in state.conflicts {
                print("  conflict \(conflict.code): \(conflict.detail)\(conflict.recorded ? "" : " (not recorded yet)")")
            }
        }
        if !found { throw ValidationError("order \(orderID) has no events in \(location.data)") }
        if corrupt { throw ExitCode(2) }
    }
}

struct InspectLog: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Print a node's log, oldest first, from an offset.")

    @OptionGroup var location: LogLocation

    @Option(help: "Origin whose events to print (default: the node's own).")
    var origin: String?

    @Option(help: "First offset to print.")
    var from: Int64 = 1

    @Option(help: "Most events to print.")
    var limit: Int = 100

    func validate() throws {
        guard from >= 1 else { throw ValidationError("--from must be at least 1") }
        guard limit >= 1 else { throw ValidationError("--limit must be at least 1") }
    }

    func run() async throws {
        var corrupt = 0
        for file in try location.files() {
            let log = try EventLog.openReadOnly(path: file.path)
            let origin = origin ?? log.origin
            let origins = try await log.origins()
            let summary = origins.map { "\($0.origin)=\($0.lastOffset)" }.joined(separator: " ")
            print("== \(file.node): \(file.path)  (newest offsets: \(summary.isEmpty ? "empty" : summary))")
            for record in try await log.scanUnverified(origin: origin, fromOffset: from, limit: limit) {
                print(TimelineFormat.line(record))
                if !record.isIntact { corrupt += 1 }
            }
        }
        if corrupt > 0 {
            FileHandle.standardError.write(Data("error: \(corrupt) corrupt event(s), marked above with their origin#offset\n".utf8))
            throw ExitCode(2)
        }
    }
}
