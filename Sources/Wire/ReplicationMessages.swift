import LogStorage
import NIOCore
import OrderDomain
import Replication

/// What a follower asks of a node that holds a log.
public enum FetchScope: Sendable, Equatable {
    /// The origin's log from `fromOffset`, at most `eventsMax` events; with
    /// nothing new, the holder waits up to `waitMs` for the next commit.
    /// `previousEventID` and `previousChecksum`: the event at `fromOffset - 1`
    /// when the follower copied it, and `previousHeld` whether it kept it
    /// (see `FetchServing.identityRefusal`).
    case log(
        origin: String, fromOffset: Int64, eventsMax: UInt32, waitMs: UInt32, previousEventID: String? = nil, previousChecksum: UInt32 = 0,
        previousHeld: Bool = true)
    /// Every event this node holds of each of these orders, whatever its
    /// origin (a new leader gathering what it lacks before it decides; the
    /// orders a leader activates while one such fetch is in flight to a
    /// replica go together in the next, at most `ordersPerGatherMax`).
    case orders([ClientID])
}

public struct FetchRequest: Sendable, Equatable {
    /// Set by the transport (it matches the reply to the call).
    public var correlationID: UInt64
    public var follower: String
    public var scope: FetchScope
    /// The follower's view as it sends the fetch (for `.log` fetches of an
    /// origin's own log: see `VouchView`).
    public var view: VouchView? = nil

    public init(correlationID: UInt64 = 0, follower: String, scope: FetchScope, view: VouchView? = nil) {
        self.correlationID = correlationID
        self.follower = follower
        self.scope = scope
        self.view = view
    }
}

public struct FetchReply: Sendable, Equatable {
    public var events: [EventRecord]
    /// The position in the origin's log this reply brings the follower to
    /// (for `.log`; 0 for `.order`).
    public var throughOffset: Int64
    /// The origin's newest offset as the holder knows it, for lag.
    public var holderLastOffset: Int64
    /// Set when the holder could not serve the fetch.
    public var refusal: String?
    /// For a fetch of orders: per order of the request, in its order, the
    /// term this holder has granted for the order's preference list (a new
    /// leader counts only the replicas that granted its term). Empty for
    /// `.log`.
    public var promises: [Term?]

    public init(events: [EventRecord], throughOffset: Int64, holderLastOffset: Int64, refusal: String?, promises: [Term?] = []) {
        self.events = events
        self.throughOffset = throughOffset
        self.holderLastOffset = holderLastOffset
        self.refusal = refusal
        self.promises = promises
    }
}

public enum ReplicationCodec {
    public static let eventsPerBatchMax: UInt32 = 2000
    /// Orders in one gathering fetch, at most.
    public static let ordersPerGatherMax = 16
    /// One event's payload, at most (a batch stops growing at
    /// `FetchServing.batchBytesMax`).
    public static let payloadBytesMax = 1 << 20
    /// Nodes named in a view, at most (as many as a digest holds).
    public static let viewNodesMax = 1024
    /// Origins in a grant's held offsets, at most: a replica that holds
    /// more logs sends none (the leader then gathers every order).
    public static let heldOriginsMax = 1024

    public static func encode(_ request: FetchRequest) -> Frame {
        var buffer = ByteBuffer()
        buffer.writeInteger(request.correlationID)
        buffer.writeLengthPrefixed(request.follower)
        switch request.scope {
        case .log(let origin, let fromOffset, let eventsMax, let waitMs, let previousEventID, let previousChecksum, let previousHeld):
            buffer.writeInteger(UInt8(0))
            buffer.writeLengthPrefixed(origin)
            buffer.writeInteger(fromOffset)
            buffer.writeInteger(eventsMax)
            buffer.writeInteger(waitMs)
            buffer.writeLengthPrefixed(previousEventID ?? "")
            buffer.writeInteger(previousEventID == nil ? 0 : previousChecksum)
            buffer.writeInteger(UInt8(previousEventID == nil || previousHeld ? 1 : 0))
        case .orders(let orderIDs):
            buffer.writeInteger(UInt8(1))
            buffer.writeInteger(UInt16(orderIDs.count))
            for orderID in orderIDs { buffer.writeLengthPrefixed(orderID.rawValue) }
        }
        if let view = request.view {
            buffer.writeInteger(UInt8(1))
            write(view, to: &buffer)
        } else {
            buffer.writeInteger(UInt8(0))
        }
        return Frame(type: ReplicationFrame.fetch.rawValue, payload: buffer)
    }

    private static func write(_ view: VouchView, to buffer: inout ByteBuffer) {
        for nodes in [view.ring, view.eligible.sorted()] {
            buffer.writeInteger(UInt16(nodes.count))
            for node in nodes { buffer.writeLengthPrefixed(node) }
        }
        buffer.writeInteger(view.sequence)
        write(view.promises, to: &buffer)
    }

    static func write(_ promises: [String: Term], to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt16(promises.count))
        for (group, term) in promises.sorted(by: { $0.key < $1.key }) {
            buffer.writeLengthPrefixed(group)
            write(term, to: &buffer)
        }
    }

    static func readPromises(_ reader: inout PayloadReader) throws(WireError) -> [String: Term] {
        let count = Int(try reader.integer("promise count", as: UInt16.self))
        guard count <= viewNodesMax else { throw .malformed("\(count) promises, at most \(viewNodesMax)") }
        var promises: [String: Term] = [:]
        for _ in 0..<count {
            let group = try reader.string("preference list", max: groupBytesMax)
            promises[group] = try readTerm(&reader)
        }
        return promises
    }

    static func write(_ term: Term, to buffer: inout ByteBuffer) {
        buffer.writeInteger(term.number)
        buffer.writeLengthPrefixed(term.leader)
    }

    static func readTerm(_ reader: inout PayloadReader) throws(WireError) -> Term {
        let number = try reader.integer("term", as: Int64.self)
        guard number >= 0 else { throw .malformed("term \(number)") }
        return Term(number: number, leader: try reader.string("term leader", max: 64))
    }

    /// Longest preference-list key (members joined by commas).
    static let groupBytesMax = 64 * 8 + 8

    private static func readView(_ reader: inout PayloadReader) throws(WireError) -> VouchView {
        var lists: [[String]] = []
        for what in ["ring", "eligible nodes"] {
            let count = Int(try reader.integer("\(what) count", as: UInt16.self))
            guard count <= viewNodesMax else { throw .malformed("\(count) \(what), at most \(viewNodesMax)") }
            var nodes: [String] = []
            for _ in 0..<count { nodes.append(try reader.string("node id", max: 64)) }
            lists.append(nodes)
        }
        guard lists[0] == lists[0].sorted() else { throw .malformed("the ring's nodes are not sorted") }
        let sequence = try reader.integer("view sequence", as: UInt64.self)
        let promises = try readPromises(&reader)
        return VouchView(ring: lists[0], eligible: Set(lists[1]), promises: promises, sequence: sequence)
    }

    /// A follower's view, sent when it changes.
    public static func encodeVouch(follower: String, _ view: VouchView) -> Frame {
        var buffer = ByteBuffer()
        buffer.writeLengthPrefixed(follower)
        write(view, to: &buffer)
        return Frame(type: ReplicationFrame.vouch.rawValue, payload: buffer)
    }

    public static func decodeVouch(_ frame: Frame) throws(WireError) -> (follower: String, view: VouchView) {
        var reader = PayloadReader(frame.payload)
        let follower = try reader.string("follower", max: 64)
        let view = try readView(&reader)
        try reader.finish("view")
        return (follower, view)
    }

    public static func decodeRequest(_ frame: Frame) throws(WireError) -> FetchRequest {
        var reader = PayloadReader(frame.payload)
        let correlationID = try reader.integer("correlation id", as: UInt64.self)
        let follower = try reader.string("follower", max: 64)
        let scope: FetchScope
        switch try reader.integer("scope", as: UInt8.self) {
        case 0:
            let origin = try reader.string("origin", max: 64)
            let fromOffset = try reader.integer("from offset", as: Int64.self)
            guard fromOffset >= 1 else { throw .malformed("from offset \(fromOffset) is below 1") }
            let eventsMax = try reader.integer("events max", as: UInt32.self)
            let waitMs = try reader.integer("wait", as: UInt32.self)
            let previous = try reader.string("previous event id")
            let checksum = try reader.integer("previous checksum", as: UInt32.self)
            let held: Bool
            switch try reader.integer("previous held", as: UInt8.self) {
            case 0: held = false
            case 1: held = true
            case let other: throw .malformed("previous held flag \(other), 0 or 1 expected")
            }
            scope = .log(
                origin: origin, fromOffset: fromOffset, eventsMax: min(eventsMax, eventsPerBatchMax), waitMs: min(waitMs, 10_000),
                previousEventID: previous.isEmpty ? nil : previous, previousChecksum: previous.isEmpty ? 0 : checksum,
                previousHeld: previous.isEmpty || held)
        case 1:
            let count = Int(try reader.integer("order count", as: UInt16.self))
            guard (1...ordersPerGatherMax).contains(count) else { throw .malformed("\(count) orders in one fetch, 1 to \(ordersPerGatherMax) allowed") }
            var orderIDs: [ClientID] = []
            for _ in 0..<count {
                guard let orderID = ClientID(try reader.string("order id")) else { throw .malformed("order id out of pattern") }
                orderIDs.append(orderID)
            }
            scope = .orders(orderIDs)
        case let other:
            throw .malformed("unknown fetch scope \(other)")
        }
        var view: VouchView?
        switch try reader.integer("view flag", as: UInt8.self) {
        case 0: view = nil
        case 1: view = try readView(&reader)
        case let other: throw .malformed("view flag \(other)")
        }
        try reader.finish("fetch request")
        return FetchRequest(correlationID: correlationID, follower: follower, scope: scope, view: view)
    }

    public static func encode(_ reply: FetchReply, correlationID: UInt64) -> Frame {
        var buffer = ByteBuffer()
        buffer.writeInteger(correlationID)
        buffer.writeInteger(reply.throughOffset)
        buffer.writeInteger(reply.holderLastOffset)
        buffer.writeInteger(UInt8(reply.refusal == nil ? 0 : 1))
        buffer.writeLengthPrefixed((reply.refusal ?? "").prefix(utf8Bytes: 2048))
        buffer.writeInteger(UInt16(reply.promises.count))
        for promise in reply.promises {
            buffer.writeInteger(UInt8(promise == nil ? 0 : 1))
            if let promise { write(promise, to: &buffer) }
        }
        write(reply.events, to: &buffer)
        return Frame(type: ReplicationFrame.batch.rawValue, payload: buffer)
    }

    /// Events as a batch carries them: a count, then each event whole (its
    /// checksum with it).
    static func write(_ events: [EventRecord], to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(events.count))
        for event in events {
            buffer.writeLengthPrefixed(event.origin)
            buffer.writeInteger(event.offset)
            buffer.writeLengthPrefixed(event.orderID)
            buffer.writeInteger(event.version)
            buffer.writeLengthPrefixed(event.type)
            buffer.writeInteger(UInt32(event.payload.utf8.count))
            buffer.writeString(event.payload)
            buffer.writeLengthPrefixed(event.eventID)
            buffer.writeInteger(event.recordedAt)
            buffer.writeInteger(event.term)
            buffer.writeInteger(event.checksum)
        }
    }

    static func readEvents(_ reader: inout PayloadReader) throws(WireError) -> [EventRecord] {
        let count = Int(try reader.integer("event count", as: UInt32.self))
        guard count <= Int(eventsPerBatchMax) * 2 else { throw .malformed("\(count) events in one batch") }
        var events: [EventRecord] = []
        events.reserveCapacity(count)
        for _ in 0..<count {
            let origin = try reader.string("origin", max: 64)
            let offset = try reader.integer("offset", as: Int64.self)
            let orderID = try reader.string("order id")
            let version = try reader.integer("version", as: Int64.self)
            let type = try reader.string("type")
            let length = Int(try reader.integer("payload length", as: UInt32.self))
            guard length <= payloadBytesMax, let payload = try? reader.text("event payload", count: length)
            else { throw .malformed("event payload") }
            let eventID = try reader.string("event id")
            let recordedAt = try reader.integer("recorded at", as: Int64.self)
            let term = try reader.integer("term", as: Int64.self)
            let checksum = try reader.integer("checksum", as: UInt32.self)
            events.append(EventRecord(
                origin: origin, offset: offset, orderID: orderID, version: version, type: type, payload: payload,
                eventID: eventID, recordedAt: recordedAt, term: term, checksum: checksum))
        }
        return events
    }

    /// Decodes a batch. Each event's checksum travels with it; the log
    /// verifies it before storing anything.
    public static func decodeReply(_ frame: Frame) throws(WireError) -> FetchReply {
        var reader = PayloadReader(frame.payload)
        _ = try reader.integer("correlation id", as: UInt64.self)
        let through = try reader.integer("through offset", as: Int64.self)
        let last = try reader.integer("last offset", as: Int64.self)
        let refused = try reader.integer("refused", as: UInt8.self) == 1
        let refusal = try reader.string("refusal", max: 4096)
        let promiseCount = Int(try reader.integer("promise count", as: UInt16.self))
        guard promiseCount <= ordersPerGatherMax else { throw .malformed("\(promiseCount) promises, at most \(ordersPerGatherMax)") }
        var promises: [Term?] = []
        for _ in 0..<promiseCount {
            switch try reader.integer("promise flag", as: UInt8.self) {
            case 0: promises.append(nil)
            case 1: promises.append(try readTerm(&reader))
            case let other: throw .malformed("promise flag \(other)")
            }
        }
        let events = try readEvents(&reader)
        try reader.finish("fetch reply")
        return FetchReply(events: events, throughOffset: through, holderLastOffset: last, refusal: refused ? refusal : nil, promises: promises)
    }
}

/// A node asks a replica of a preference list to grant it a term.
public struct GrantRequest: Sendable, Equatable {
    /// The preference list (`TermGroup.key`).
    public var group: String
    public var term: Term
    /// Asks a replica that grants for how far it holds each log (protocol
    /// 9; a new term's leader asks, see `GrantReply.held`). Never sent to
    /// a peer that speaks an older version.
    public var wantsHeld: Bool

    /// The first protocol version that carries `wantsHeld` and the reply's `held`.
    public static let heldSinceVersion: UInt8 = 9

    public init(group: String, term: Term, wantsHeld: Bool = false) {
        self.group = group
        self.term = term
        self.wantsHeld = wantsHeld
    }
}

/// The replica's answer: granted (and made durable) or not, and the term it
/// has granted for the list now.
public struct GrantReply: Sendable, Equatable {
    public var granted: Bool
    public var promise: Term
    /// Why not, when not.
    public var reason: String
    /// When asked (`GrantRequest.wantsHeld`) and granted: per origin, the
    /// highest offset of that origin's log among the events this replica
    /// held once the grant was made. Every write it acknowledged in an
    /// older term is at or below it (`GatherRule.covered`).
    public var held: [String: Int64]?

    public init(granted: Bool, promise: Term, reason: String = "", held: [String: Int64]? = nil) {
        self.granted = granted
        self.promise = promise
        self.reason = reason
        self.held = held
    }
}

public enum GrantCodec {
    public static func encode(_ request: GrantRequest, correlationID: UInt64) -> Frame {
        var buffer = ByteBuffer()
        buffer.writeInteger(correlationID)
        buffer.writeLengthPrefixed(request.group)
        ReplicationCodec.write(request.term, to: &buffer)
        // Protocol 9 adds the flag; without it the frame is as version 8's.
        if request.wantsHeld { buffer.writeInteger(UInt8(1)) }
        return Frame(type: ReplicationFrame.grant.rawValue, payload: buffer)
    }

    public static func decodeRequest(_ frame: Frame) throws(WireError) -> (correlationID: UInt64, request: GrantRequest) {
        var reader = PayloadReader(frame.payload)
        let correlationID = try reader.integer("correlation id", as: UInt64.self)
        let group = try reader.string("preference list", max: ReplicationCodec.groupBytesMax)
        let term = try ReplicationCodec.readTerm(&reader)
        var wantsHeld = false
        if reader.buffer.readableBytes > 0 {
            let flag = try reader.integer("held flag", as: UInt8.self)
            guard flag == 1 else { throw .malformed("held flag \(flag)") }
            wantsHeld = true
        }
        try reader.finish("grant request")
        return (correlationID, GrantRequest(group: group, term: term, wantsHeld: wantsHeld))
    }

    public static func encode(_ reply: GrantReply, correlationID: UInt64) -> Frame {
        var buffer = ByteBuffer()
        buffer.writeInteger(correlationID)
        buffer.writeInteger(UInt8(reply.granted ? 1 : 0))
        ReplicationCodec.write(reply.promise, to: &buffer)
        buffer.writeLengthPrefixed(reply.reason.prefix(utf8Bytes: 2048))
        // Only to a request that asked (protocol 9), and only whole: a
        // part would tell the leader it holds less than it does.
        if let held = reply.held, held.count <= ReplicationCodec.heldOriginsMax {
            let entries = held.sorted { $0.key < $1.key }
            buffer.writeInteger(UInt16(entries.count))
            for (origin, offset) in entries {
                buffer.writeLengthPrefixed(Array(origin.utf8))
                buffer.writeInteger(offset)
            }
        }
        return Frame(type: ReplicationFrame.grantReply.rawValue, payload: buffer)
    }

    public static func decodeReply(_ frame: Frame) throws(WireError) -> (correlationID: UInt64, reply: GrantReply) {
        var reader = PayloadReader(frame.payload)
        let correlationID = try reader.integer("correlation id", as: UInt64.self)
        let granted = try reader.integer("granted", as: UInt8.self)
        guard granted <= 1 else { throw .malformed("granted flag \(granted)") }
        let promise = try ReplicationCodec.readTerm(&reader)
        let reason = try reader.string("reason", max: 2048)
        var held: [String: Int64]?
        if reader.buffer.readableBytes > 0 {
            let count = try reader.integer("held origins", as: UInt16.self)
            guard count <= ReplicationCodec.heldOriginsMax else {
                throw .malformed("\(count) held origins, at most \(ReplicationCodec.heldOriginsMax) allowed")
            }
            var entries: [String: Int64] = [:]
            for _ in 0..<count {
                let origin = try reader.string("held origin")
                let offset = try reader.integer("held offset", as: Int64.self)
                guard offset >= 0 else { throw .malformed("held offset \(offset) of \(origin)") }
                guard entries.updateValue(offset, forKey: origin) == nil else { throw .malformed("origin \(origin) held twice") }
            }
            held = entries
        }
        try reader.finish("grant reply")
        return (correlationID, GrantReply(granted: granted == 1, promise: promise, reason: reason, held: held))
    }
}

/// A node that starts on a log that may have gone back (a replaced disk, a
/// restore) asks each peer what it holds of it before it grants a term or
/// leads anything (see `Replicator.recover`).
public struct RecoveryRequest: Sendable, Equatable {
    /// The asking node.
    public var node: String
    /// Asks for the ring the peer holds (`RecoveryReply.heldRing`): a
    /// node that leaves hands over until every other member holds a ring
    /// without it (protocol 10). Never sent to a peer that speaks an older
    /// version.
    public var wantsRing: Bool

    /// The first protocol version that carries `wantsRing` and the reply's `heldRing`.
    public static let ringSinceVersion: UInt8 = 10

    public init(node: String, wantsRing: Bool = false) {
        self.node = node
        self.wantsRing = wantsRing
    }
}

/// What a peer holds of the asking node: the terms it granted for the
/// preference lists that hold the node, whether its log holds anything at
/// all (events or terms: the cluster has run), and whether it is
/// recovering itself; or why it cannot say (`refusal`: it is starting).
public struct RecoveryReply: Sendable, Equatable {
    public var promises: [String: Term]
    public var holdsAnything: Bool
    public var recovering: Bool
    /// The nodes the peer knows of from its log and its view (the logs it
    /// copies, the lists it granted terms for, its ring): the asking node
    /// must hear from them too, since a node down everywhere is on no ring
    /// and may still hold the newest copy of the asker's log.
    public var knownNodes: [String]
    /// The peer holds every order of its current ring (its backfill after
    /// the last ring change is complete): what a node that left held is
    /// here too.
    public var backfilled: Bool
    public var refusal: String?
    /// When asked (`RecoveryRequest.wantsRing`): the members of the ring
    /// whose orders the peer holds (its current ring, backfilled), sorted;
    /// empty while it holds none. Nil from a peer that was not asked or
    /// speaks an older version.
    public var heldRing: [String]?

    public init(
        promises: [String: Term], holdsAnything: Bool, recovering: Bool, knownNodes: [String] = [], backfilled: Bool = false,
        refusal: String? = nil, heldRing: [String]? = nil
    ) {
        self.promises = promises
        self.holdsAnything = holdsAnything
        self.recovering = recovering
        self.knownNodes = knownNodes
        self.backfilled = backfilled
        self.refusal = refusal
        self.heldRing = heldRing
    }
}

public enum RecoveryCodec {
    public static func encode(_ request: RecoveryRequest, correlationID: UInt64) -> Frame {
        var buffer = ByteBuffer()
        buffer.writeInteger(correlationID)
        buffer.writeLengthPrefixed(request.node)
        // Protocol 10 adds the flag; without it the frame is as version 9's.
        if request.wantsRing { buffer.writeInteger(UInt8(1)) }
        return Frame(type: ReplicationFrame.recovery.rawValue, payload: buffer)
    }

    public static func decodeRequest(_ frame: Frame) throws(WireError) -> (correlationID: UInt64, request: RecoveryRequest) {
        var reader = PayloadReader(frame.payload)
        let correlationID = try reader.integer("correlation id", as: UInt64.self)
        let node = try reader.string("node id", max: 64)
        var wantsRing = false
        if reader.buffer.readableBytes > 0 {
            let flag = try reader.integer("ring flag", as: UInt8.self)
            guard flag == 1 else { throw .malformed("ring flag \(flag)") }
            wantsRing = true
        }
        try reader.finish("recovery request")
        return (correlationID, RecoveryRequest(node: node, wantsRing: wantsRing))
    }

    public static func encode(_ reply: RecoveryReply, correlationID: UInt64) -> Frame {
        var buffer = ByteBuffer()
        buffer.writeInteger(correlationID)
        ReplicationCodec.write(reply.promises, to: &buffer)
        buffer.writeInteger(UInt8((reply.holdsAnything ? 1 : 0) | (reply.recovering ? 2 : 0) | (reply.backfilled ? 4 : 0)))
        buffer.writeInteger(UInt16(reply.knownNodes.count))
        for node in reply.knownNodes { buffer.writeLengthPrefixed(node) }
        buffer.writeLengthPrefixed((reply.refusal ?? "").prefix(utf8Bytes: 2048))
        // Only to a request that asked (protocol 10), and only whole.
        if let ring = reply.heldRing, ring.count <= ReplicationCodec.viewNodesMax {
            buffer.writeInteger(UInt16(ring.count))
            for node in ring { buffer.writeLengthPrefixed(node) }
        }
        return Frame(type: ReplicationFrame.recoveryReply.rawValue, payload: buffer)
    }

    public static func decodeReply(_ frame: Frame) throws(WireError) -> (correlationID: UInt64, reply: RecoveryReply) {
        var reader = PayloadReader(frame.payload)
        let correlationID = try reader.integer("correlation id", as: UInt64.self)
        let promises = try ReplicationCodec.readPromises(&reader)
        let flags = try reader.integer("flags", as: UInt8.self)
        guard flags <= 7 else { throw .malformed("recovery flags \(flags)") }
        let count = Int(try reader.integer("known node count", as: UInt16.self))
        guard count <= ReplicationCodec.viewNodesMax else { throw .malformed("\(count) known nodes, at most \(ReplicationCodec.viewNodesMax)") }
        var known: [String] = []
        for _ in 0..<count { known.append(try reader.string("node id", max: 64)) }
        let refusal = try reader.string("refusal", max: 2048)
        var heldRing: [String]?
        if reader.buffer.readableBytes > 0 {
            let count = Int(try reader.integer("held ring count", as: UInt16.self))
            guard count <= ReplicationCodec.viewNodesMax else { throw .malformed("\(count) held ring members, at most \(ReplicationCodec.viewNodesMax)") }
            var ring: [String] = []
            for _ in 0..<count { ring.append(try reader.string("node id", max: 64)) }
            guard Set(ring).count == ring.count else { throw .malformed("a held ring names a node twice") }
            heldRing = ring
        }
        try reader.finish("recovery reply")
        return (
            correlationID,
            RecoveryReply(
                promises: promises, holdsAnything: flags & 1 != 0, recovering: flags & 2 != 0, knownNodes: known,
                backfilled: flags & 4 != 0, refusal: refusal.isEmpty ? nil : refusal, heldRing: heldRing)
        )
    }
}

/// A leader that took a term for an order gives each replica that granted it
/// the events of the order it holds and the replica lacks, until every
/// event it will answer from is on a majority of the order's replicas: a
/// write of an earlier leader whose acknowledgement never came (its own
/// from a previous life, or another node's it copied) may be on this node
/// alone, and answering from it would let a later leader, which cannot
/// see it, decide against what a client was told. Copies are stored as
/// they are (INSERT OR IGNORE, checksums verified).
public struct StoreRequest: Sendable, Equatable {
    public var events: [EventRecord]

    public init(events: [EventRecord]) {
        self.events = events
    }
}

/// How many of the events the replica holds durably now (those it held
/// already count), or why it stored none.
public struct StoreReply: Sendable, Equatable {
    public var stored: Int
    public var refusal: String?

    public init(stored: Int, refusal: String? = nil) {
        self.stored = stored
        self.refusal = refusal
    }
}

public enum StoreCodec {
    public static func encode(_ request: StoreRequest, correlationID: UInt64) -> Frame {
        var buffer = ByteBuffer()
        buffer.writeInteger(correlationID)
        ReplicationCodec.write(request.events, to: &buffer)
        return Frame(type: ReplicationFrame.store.rawValue, payload: buffer)
    }

    public static func decodeRequest(_ frame: Frame) throws(WireError) -> (correlationID: UInt64, request: StoreRequest) {
        var reader = PayloadReader(frame.payload)
        let correlationID = try reader.integer("correlation id", as: UInt64.self)
        let events = try ReplicationCodec.readEvents(&reader)
        try reader.finish("store request")
        return (correlationID, StoreRequest(events: events))
    }

    public static func encode(_ reply: StoreReply, correlationID: UInt64) -> Frame {
        var buffer = ByteBuffer()
        buffer.writeInteger(correlationID)
        buffer.writeInteger(UInt32(clamping: reply.stored))
        buffer.writeLengthPrefixed((reply.refusal ?? "").prefix(utf8Bytes: 2048))
        return Frame(type: ReplicationFrame.storeReply.rawValue, payload: buffer)
    }

    public static func decodeReply(_ frame: Frame) throws(WireError) -> (correlationID: UInt64, reply: StoreReply) {
        var reader = PayloadReader(frame.payload)
        let correlationID = try reader.integer("correlation id", as: UInt64.self)
        let stored = Int(try reader.integer("stored", as: UInt32.self))
        let refusal = try reader.string("refusal", max: 2048)
        try reader.finish("store reply")
        return (correlationID, StoreReply(stored: stored, refusal: refusal.isEmpty ? nil : refusal))
    }
}
