import Checksum

/// An event to append: the log assigns origin, offset, id, time and checksum.
public struct NewEvent: Sendable, Equatable {
    public var orderID: String
    public var version: Int64
    public var type: String
    public var payload: String
    /// The number of the leadership term it was decided in (0: none).
    public var term: Int64

    public init(orderID: String, version: Int64, type: String, payload: String, term: Int64 = 0) {
        self.orderID = orderID
        self.version = version
        self.type = type
        self.payload = payload
        self.term = term
    }
}

/// A leadership term this node granted for a preference list (its members
/// in order, comma-separated): it acknowledges nothing of an older term
/// for that list, and grants none older again (`term_promises`). A promise
/// only replaces an older one (by term, then leader).
public struct Promise: Sendable, Equatable {
    public var group: String
    public var term: Int64
    public var leader: String

    public init(group: String, term: Int64, leader: String) {
        self.group = group
        self.term = term
        self.leader = leader
    }
}

/// What an append must still hold when it commits: asked on the writer's
/// side right before the transaction; a reason refuses the append (nothing
/// of it is written). A leader checks there that it still holds its term,
/// so a decision taken before a pause never commits after it.
public struct CommitCheck: Sendable {
    public let reasonToRefuse: @Sendable () -> String?

    public init(_ reasonToRefuse: @escaping @Sendable () -> String?) {
        self.reasonToRefuse = reasonToRefuse
    }
}

/// One row of the `events` table.
public struct EventRecord: Sendable, Equatable {
    public var origin: String
    public var offset: Int64
    public var orderID: String
    public var version: Int64
    public var type: String
    public var payload: String
    public var eventID: String
    public var recordedAt: Int64
    public var term: Int64
    public var checksum: UInt32

    public init(
        origin: String, offset: Int64, orderID: String, version: Int64, type: String,
        payload: String, eventID: String, recordedAt: Int64, term: Int64 = 0, checksum: UInt32? = nil
    ) {
        self.origin = origin
        self.offset = offset
        self.orderID = orderID
        self.version = version
        self.type = type
        self.payload = payload
        self.eventID = eventID
        self.recordedAt = recordedAt
        self.term = term
        self.checksum = 0
        self.checksum = checksum ?? computedChecksum
    }

    /// CRC-32C over every other column, each length-prefixed so that moving
    /// bytes from one column to the next changes the sum.
    public var computedChecksum: UInt32 {
        var crc = CRC32C.Accumulator()
        func add(_ text: String) {
            crc.update(Int64(text.utf8.count))
            crc.update(text)
        }
        add(origin)
        add(orderID)
        add(type)
        add(payload)
        add(eventID)
        crc.update(offset)
        crc.update(version)
        crc.update(recordedAt)
        crc.update(term)
        return crc.value
    }

    public var isIntact: Bool { checksum == computedChecksum }

    /// Throws `corruptEvent` with the row's position when the checksum fails.
    public func verified() throws -> EventRecord {
        guard isIntact else {
            throw EventLogError.corruptEvent(origin: origin, offset: offset, orderID: orderID)
        }
        return self
    }
}

/// A per-order snapshot: the folded state after `version` events.
public struct Checkpoint: Sendable, Equatable {
    public var orderID: String
    public var version: Int64
    public var state: String
    public var writtenAt: Int64
    /// When set, the checkpoint is written only if the file holds exactly
    /// this many events of the order at or below `version` at commit time:
    /// a checkpoint built from a read of copied events must not hide an
    /// event that landed after the read. Not stored.
    public var coveredEvents: Int64?

    public init(orderID: String, version: Int64, state: String, writtenAt: Int64 = 0, coveredEvents: Int64? = nil) {
        self.orderID = orderID
        self.version = version
        self.state = state
        self.writtenAt = writtenAt
        self.coveredEvents = coveredEvents
    }

    public var checksum: UInt32 {
        var crc = CRC32C.Accumulator()
        crc.update(Int64(orderID.utf8.count))
        crc.update(orderID)
        crc.update(version)
        crc.update(state)
        return crc.value
    }
}

/// A departed member's log that this node read whole for its orders on one
/// ring (`departed_logs_read`): every event of `origin`'s log whose order
/// the ring places on this node is in this file. A member that left writes
/// nothing more in that departure (`incarnation`: it comes back only in a
/// new one), so a later backfill of the same ring need not read that log
/// again, which without its origin takes every other member of the ring.
public struct DepartedLogRead: Sendable, Hashable {
    public var origin: String
    /// The member's incarnation when it left.
    public var incarnation: UInt64
    /// The ring's members, sorted.
    public var ring: [String]

    public init(origin: String, incarnation: UInt64, ring: some Sequence<String>) {
        self.origin = origin
        self.incarnation = incarnation
        self.ring = ring.sorted()
    }

    /// The ring as it is stored: its members, sorted, joined by commas.
    public var ringText: String { ring.joined(separator: ",") }
}

/// What an append does to the order's timer row, in the same transaction.
public enum DeadlineChange: Sendable, Equatable {
    case set(Int64)
    case clear
}

/// One atomic unit for the writer: events of one order, plus the checkpoint
/// and timer changes that must commit with them.
public struct AppendRequest: Sendable, Equatable {
    public var events: [NewEvent]
    public var checkpoint: Checkpoint?
    public var deadline: (orderID: String, change: DeadlineChange)?
    /// A term granted, stored with the rest.
    public var promise: Promise?
    /// The ring as this node knows it now, replacing what was stored
    /// (`ring_members`): every member it has heard of, and whether it left.
    public var ring: [String: Bool]?
    /// Departed members' logs this node read whole, recorded with the rest.
    public var departedLogsRead: [DepartedLogRead]
    /// Checked right before the commit (see `CommitCheck`).
    public var check: CommitCheck?

    public init(
        events: [NewEvent], checkpoint: Checkpoint? = nil, deadline: (orderID: String, change: DeadlineChange)? = nil,
        promise: Promise? = nil, ring: [String: Bool]? = nil, departedLogsRead: [DepartedLogRead] = [], check: CommitCheck? = nil
    ) {
        self.events = events
        self.checkpoint = checkpoint
        self.deadline = deadline
        self.promise = promise
        self.ring = ring
        self.departedLogsRead = departedLogsRead
        self.check = check
    }

    public static func == (lhs: AppendRequest, rhs: AppendRequest) -> Bool {
        lhs.events == rhs.events && lhs.checkpoint == rhs.checkpoint
            && lhs.deadline?.orderID == rhs.deadline?.orderID && lhs.deadline?.change == rhs.deadline?.change
            && lhs.promise == rhs.promise && lhs.ring == rhs.ring && lhs.departedLogsRead == rhs.departedLogsRead
    }
}

/// Copies of another node's events, stored as they are (same origin, offset,
/// id and checksum). `throughOffset`, when set, is the position in the
/// origin's log this batch brings the copy to.
public struct ReplicatedBatch: Sendable, Equatable {
    public var origin: String
    public var events: [EventRecord]
    public var throughOffset: Int64?
    /// Timers of held payments the copies carry, per order: each order's
    /// timer is set to the earlier of this and the one it has, in the same
    /// transaction (whichever replica leads the order later fires it).
    public var deadlines: [String: Int64]
    /// Set for events of the node's own log put back (`LogStore.reimport`):
    /// the own log moves past this offset.
    public var reimportFloor: Int64?

    public init(origin: String, events: [EventRecord], throughOffset: Int64?, deadlines: [String: Int64] = [:], reimportFloor: Int64? = nil) {
        self.origin = origin
        self.events = events
        self.throughOffset = throughOffset
        self.deadlines = deadlines
        self.reimportFloor = reimportFloor
    }
}
