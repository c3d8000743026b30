import Foundation
import LogStorage
import OrderDomain

/// Where a reader of the event feed (`GET /events`) stands: per origin, the
/// offset through which it has had every event of that origin's log. Each
/// event the feed sends carries the position just after it, so a client that
/// resumes from it gets exactly what follows. Opaque to clients: its text is
/// base64url of `origin:offset` pairs.
public struct FeedPosition: Sendable, Equatable, CustomStringConvertible {
    public var offsets: [String: Int64]

    public init(_ offsets: [String: Int64] = [:]) { self.offsets = offsets }

    /// The token clients hand back (`Last-Event-ID`, `?after=`).
    public var token: String {
        let text = offsets.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",")
        return Data(text.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    public var description: String { token }

    /// At most this many logs in a token (a cluster's nodes, past and present).
    public static let originsMax = 64
    /// No log reaches this offset; a larger one is not a position of ours.
    public static let offsetMax: Int64 = 1 << 53

    public enum TokenError: Error, Equatable, CustomStringConvertible {
        case malformed(String)
        public var description: String {
            switch self {
            case .malformed(let why): return "not a position token of this feed: \(why)"
            }
        }
    }

    /// Reads a token; the empty token is the beginning of every log.
    public init(token: String) throws {
        guard !token.isEmpty else {
            self.init()
            return
        }
        guard token.count <= 4096, token.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            throw TokenError.malformed("only base64url characters, at most 4096")
        }
        var base64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64), let text = String(data: data, encoding: .utf8) else {
            throw TokenError.malformed("not base64url of text")
        }
        var offsets: [String: Int64] = [:]
        let pairs = text.split(separator: ",", omittingEmptySubsequences: false)
        guard pairs.count <= Self.originsMax else { throw TokenError.malformed("more than \(Self.originsMax) logs") }
        for pair in pairs {
            let parts = pair.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, ClientID(String(parts[0])) != nil, let offset = Int64(parts[1]), (0...Self.offsetMax).contains(offset),
                offsets[String(parts[0])] == nil
            else { throw TokenError.malformed("bad pair '\(pair)'") }
            offsets[String(parts[0])] = offset
        }
        self.init(offsets)
    }
}

/// The order in which the event feed sends what it reads of every origin's
/// log. Pure: the feed's shell reads the logs (from each origin, or from
/// the copies its peers hold while it is away), enqueues what it read here,
/// carries out `next()`'s steps, and asks the cluster where an order's
/// earlier versions are when this says it must.
///
/// Two rules:
/// - Each origin's events go out in offset order, so a position (per origin
///   offsets) says exactly which events a client has had.
/// - An event of version v of an order goes out once an event of version
///   v-1 of that order has: in this session, or, for a session resumed from
///   a position, at an offset that position covers (found by asking the
///   nodes that hold the order: `lookup`). An order's versions can come from
///   several origins (its leader changed); the leader that wrote version v
///   held version v-1 first, so waiting for it never waits in a circle.
///   A version written twice (by both sides of a partition in available
///   mode, or an attempt of an older term and the newer term's) goes out
///   when its log reaches it, and may come after the next versions.
public struct FeedOrdering: Sendable {
    public struct Location: Hashable, Sendable {
        public var origin: String
        public var offset: Int64
        public init(origin: String, offset: Int64) {
            self.origin = origin
            self.offset = offset
        }
    }

    /// A version of an order whose whereabouts the feed must know.
    public struct Wanted: Hashable, Sendable {
        public var orderID: String
        public var version: Int64
        /// The origin of the event that waits for it: the leader that wrote
        /// that event held this version first.
        public var writer: String
        public init(orderID: String, version: Int64, writer: String) {
            self.orderID = orderID
            self.version = version
            self.writer = writer
        }
    }

    public enum Step: Equatable, Sendable {
        /// Send this event; `position` is where the client stands after it.
        case emit(EventRecord, position: FeedPosition)
        /// Before more can go: ask the nodes what they hold of these orders
        /// (for the versions named) and give the answer to `learn`.
        case lookup([Wanted])
        /// Nothing can go until more is read.
        case idle
    }

    /// Per origin: every event at or before this offset went out (or was
    /// passed: events the reader's holders did not keep).
    public private(set) var position: FeedPosition
    private var queues: [String: [EventRecord]] = [:]
    private var heads: [String: Int] = [:]
    /// Per origin: the `through` of the newest batch enqueued.
    private var ends: [String: Int64] = [:]
    /// Per order: the newest version sent in this session.
    private var newest: [String: Int64] = [:]
    /// Per order and version: where the logs hold events of it (read and
    /// waiting here, or reported by a lookup).
    private var located: [String: [Int64: Set<Location>]] = [:]
    /// Versions a lookup answered for.
    private var answered: [String: Set<Int64>] = [:]
    /// Where `next()` starts looking, so no origin waits behind the others.
    private var turn = 0

    /// Whether the session started from a client's position (not from the
    /// beginning).
    private let resumed: Bool

    public init(from position: FeedPosition = FeedPosition()) {
        self.position = position
        self.resumed = !position.offsets.isEmpty
    }

    /// Events read from `origin`'s log (in offset order, past the position),
    /// and how far the read went (`through`: the events it did not return up
    /// to there are not there to be had).
    public mutating func enqueue(_ records: [EventRecord], origin: String, through: Int64) {
        let floor = max(position.offsets[origin] ?? 0, queues[origin]?.last?.offset ?? 0)
        for record in records where record.origin == origin && record.offset > floor && record.offset <= through {
            queues[origin, default: []].append(record)
            located[record.orderID, default: [:]][record.version, default: []].insert(Location(origin: origin, offset: record.offset))
        }
        ends[origin] = max(ends[origin] ?? 0, through)
        settle(origin)
    }

    /// What the nodes hold of the orders `next()` asked about. `asked`: the
    /// versions the answer settles (those whose writer answered, or every
    /// live node): a version none of them holds is nowhere to wait for.
    /// What the other answers hold is learnt too, but their versions stay
    /// unsettled (asked again).
    public mutating func learn(_ records: [EventRecord], asked: [Wanted]) {
        for wanted in asked { answered[wanted.orderID, default: []].insert(wanted.version) }
        for record in records where record.version >= (newest[record.orderID] ?? 0) {
            located[record.orderID, default: [:]][record.version, default: []].insert(Location(origin: record.origin, offset: record.offset))
        }
    }

    /// Whether everything of `origin` up to `through` went out.
    public func drained(_ origin: String, through: Int64) -> Bool { (position.offsets[origin] ?? 0) >= through }

    /// Events waiting to go, over every origin.
    public var waiting: Int { queues.reduce(0) { $0 + $1.value.count - (heads[$1.key] ?? 0) } }

    public mutating func next() -> Step {
        let origins = queues.keys.sorted()
        guard !origins.isEmpty else { return .idle }
        var unknown: [Wanted] = []
        for index in 0..<origins.count {
            let origin = origins[(turn + index) % origins.count]
            guard let head = head(of: origin) else { continue }
            switch readiness(of: head) {
            case .ready:
                pop(origin)
                turn = (turn + index + 1) % origins.count
                return .emit(head, position: position)
            case .unknown:
                let wanted = Wanted(orderID: head.orderID, version: head.version - 1, writer: head.origin)
                if !unknown.contains(wanted) { unknown.append(wanted) }
            case .waiting:
                continue
            }
        }
        guard !unknown.isEmpty else { return .idle }
        // Ask at once about what waits further back too (a resumed feed
        // meets one such order after another): events whose version before
        // is nowhere known yet.
        var asked = Set(unknown)
        for origin in origins where unknown.count < Self.lookupMax {
            guard let queue = queues[origin] else { continue }
            let start = (heads[origin] ?? 0) + 1
            for event in queue[min(start, queue.count)..<min(queue.count, start + 256)] where unknown.count < Self.lookupMax {
                let previous = event.version - 1
                guard previous >= 1, (newest[event.orderID] ?? 0) < previous, located[event.orderID]?[previous] == nil,
                    answered[event.orderID]?.contains(previous) != true
                else { continue }
                let wanted = Wanted(orderID: event.orderID, version: previous, writer: event.origin)
                if asked.insert(wanted).inserted { unknown.append(wanted) }
            }
        }
        return .lookup(unknown)
    }

    /// At most this many versions in one lookup.
    public static let lookupMax = 64

    private enum Readiness { case ready, waiting, unknown }

    private func readiness(of event: EventRecord) -> Readiness {
        let previous = event.version - 1
        if previous < 1 || (newest[event.orderID] ?? 0) >= previous { return .ready }
        let places = located[event.orderID]?[previous] ?? []
        if places.contains(where: { $0.offset <= (position.offsets[$0.origin] ?? 0) }) { return .ready }
        let settled = answered[event.orderID]?.contains(previous) == true
        // Known places still to come: wait for them. A resumed session asks
        // first: a copy of that version its position covers may be one it
        // has not read (a version written twice).
        if !places.isEmpty && (settled || !resumed) { return .waiting }
        // Not read yet and not known: before the position this session
        // started from, or further along some log. Ask; an answer that
        // knows no such version lets it go (nothing to wait for).
        return settled ? .ready : .unknown
    }

    private func head(of origin: String) -> EventRecord? {
        guard let queue = queues[origin] else { return nil }
        let index = heads[origin] ?? 0
        return index < queue.count ? queue[index] : nil
    }

    private mutating func pop(_ origin: String) {
        guard let event = head(of: origin) else { return }
        heads[origin, default: 0] += 1
        position.offsets[origin] = event.offset
        newest[event.orderID] = max(newest[event.orderID] ?? 0, event.version)
        // What is known of versions before it no longer matters.
        if var versions = located[event.orderID] {
            versions = versions.filter { $0.key > event.version }
            located[event.orderID] = versions.isEmpty ? nil : versions
        }
        if let asked = answered[event.orderID] {
            let left = asked.filter { $0 > event.version }
            answered[event.orderID] = left.isEmpty ? nil : left
        }
        settle(origin)
    }

    /// Drops what went out; an origin with nothing left waiting stands at
    /// the end of what was read of it.
    private mutating func settle(_ origin: String) {
        guard let queue = queues[origin] else {
            if let end = ends[origin], end > position.offsets[origin] ?? 0 { position.offsets[origin] = end }
            return
        }
        let index = heads[origin] ?? 0
        if index >= queue.count {
            queues[origin] = nil
            heads[origin] = nil
            if let end = ends[origin], end > position.offsets[origin] ?? 0 { position.offsets[origin] = end }
        } else if index > 256 {
            queues[origin] = Array(queue[index...])
            heads[origin] = 0
        }
    }
}
