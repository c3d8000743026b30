/// The contract of one node's event log, whatever holds it: the SQLite file
/// of a real node (`EventLog`) or the in-memory store of the deterministic
/// simulation (`InMemoryLogStore`). Both pass one contract test suite
/// (`Tests/LogStorageTests`), so the simulated log cannot drift from the real
/// one. The node's code (transactors, replicator, copy checkpointer) sees
/// only this.
///
/// The file holds the node's own log (`origin` = the node, offsets dense
/// from 1) and copies of its peers' logs. Appends are group-committed and
/// answered only once durable; a crash takes back what was not synced.
public protocol LogStore: AnyObject, Sendable {
    /// The node that writes this log.
    var origin: String { get }
    /// Random id of this log, fixed when it was created: part of every event
    /// id, so a log started anew never reuses an id.
    var logID: String { get }
    /// Newest offset of the own log that is durable. Followers are served
    /// only events up to here, and reads by order leave out own events
    /// beyond it (a power cut could take them back).
    var committedOffset: Int64 { get }
    /// Set once an fsync failed: from then on the log takes no write and
    /// answers no read (what it holds may never reach the disk) until the
    /// node restarts from what is durable.
    var failure: EventLogError? { get }

    /// Appends the request's events (offsets assigned in order, each with
    /// its term), its checkpoint, its timer change and its promise in one
    /// transaction, unless its `check` refuses right before the commit
    /// (`refusedAtCommit`, nothing written). Returns the stored records once
    /// they are durable. A checkpoint replaces the
    /// order's only when newer, and with `coveredEvents` set only when the
    /// log holds exactly that many events of the order at or below its
    /// version at commit time.
    func append(_ request: AppendRequest) async throws -> [EventRecord]
    /// Returns once every append and copy queued before the call is durable.
    func barrier() async throws
    /// Stores copies of other nodes' events (verified first; a bad batch is
    /// refused whole), those not here yet, and moves `batch.origin`'s
    /// position forward to `throughOffset` when set, and sets each order's
    /// timer to the earlier of its own and `batch.deadlines`', in one
    /// transaction. A new copy at or below an order's checkpoint version
    /// drops that checkpoint. Returns how many events were new.
    func replicate(_ batch: ReplicatedBatch) async throws -> Int
    /// Puts back events of this node's own log that its peers hold and it
    /// lost (a replaced disk, a restore, a power cut with relaxed
    /// durability), as they are (ids, offsets, checksums; verified first),
    /// and moves the own log past `floor`, so that no new event ever takes
    /// an offset a copy of the old log used. Durable when it returns.
    /// Returns how many events were new here.
    func reimport(_ events: [EventRecord], floor: Int64) async throws -> Int
    /// How far this log holds each origin it copies.
    func replicaPositions() async throws -> [String: Int64]
    /// Per origin of the events this file holds (its own log included),
    /// the highest offset among them: every event committed before the
    /// call is at or below it.
    func heldOffsets() async throws -> [String: Int64]
    /// The terms this node has granted, per preference list.
    func promises() async throws -> [Promise]
    /// The ring members this node knew when it last recorded them (see
    /// `AppendRequest.ring`): id, and whether the member left.
    func ringMembers() async throws -> [String: Bool]
    /// The departed members' logs this node recorded as read whole (see
    /// `DepartedLogRead`).
    func departedLogsRead() async throws -> Set<DepartedLogRead>
    /// Calls `body` with the newest own offset after every commit that
    /// appended own events, once they are durable. Keep `body` short.
    func onCommit(_ body: @escaping @Sendable (Int64) -> Void)

    /// The order's newest checkpoint.
    func checkpoint(orderID: String) async throws -> Checkpoint?
    /// The order's events after `afterVersion` in (version, origin, offset)
    /// order, verified.
    func events(orderID: String, afterVersion: Int64) async throws -> [EventRecord]
    /// The order's checkpoint and the events after it, in one snapshot.
    func load(orderID: String) async throws -> (checkpoint: Checkpoint?, events: [EventRecord])
    /// Events of one origin (nil: this log's) from `fromOffset` on, in
    /// offset order, at most `limit`, verified.
    func scan(origin: String?, fromOffset: Int64, limit: Int) async throws -> [EventRecord]
    /// Pending timers (held payments), soonest first.
    func deadlines(limit: Int) async throws -> [(orderID: String, dueAt: Int64)]

    /// Lets queued appends finish, then refuses more (`EventLogError.closed`).
    func close()
}

extension AppendRequest {
    /// Throws `invalidAppend` for an event without an order id, a type or a
    /// version from 1.
    public func validate() throws {
        for event in events where event.orderID.isEmpty || event.version < 1 || event.type.isEmpty {
            throw EventLogError.invalidAppend("event needs an order id, a type and a version from 1 (got \(event))")
        }
    }
}

extension ReplicatedBatch {
    /// Throws unless every event is intact, of `own`'s log and has an id that
    /// spells its origin and offset (what `reimport` takes).
    public static func validateOwn(_ events: [EventRecord], own: String) throws {
        for record in events {
            guard record.isIntact else {
                throw EventLogError.corruptEvent(origin: record.origin, offset: record.offset, orderID: record.orderID)
            }
            guard record.origin == own else {
                throw EventLogError.invalidAppend("event \(record.eventID) is not of \(own)'s log")
            }
            guard EventID.spells(record.eventID, origin: record.origin, offset: record.offset) else {
                throw EventLogError.invalidAppend(
                    "event id \(record.eventID) does not spell its origin \(record.origin) and offset \(record.offset)")
            }
        }
    }

    /// Throws unless every copy is intact, from another origin than `own`,
    /// from `origin` when the batch moves a position, and has an id that
    /// spells its origin and offset. A bad batch changes nothing.
    public func validate(own: String) throws {
        for record in events {
            guard record.isIntact else {
                throw EventLogError.corruptEvent(origin: record.origin, offset: record.offset, orderID: record.orderID)
            }
            guard record.origin != own else {
                throw EventLogError.invalidAppend("a copy of this node's own event \(record.eventID) was offered")
            }
            guard throughOffset == nil || record.origin == origin else {
                throw EventLogError.invalidAppend("event \(record.eventID) is not from \(origin)")
            }
            guard EventID.spells(record.eventID, origin: record.origin, offset: record.offset) else {
                throw EventLogError.invalidAppend(
                    "event id \(record.eventID) does not spell its origin \(record.origin) and offset \(record.offset)")
            }
        }
        guard origin != own || throughOffset == nil else {
            throw EventLogError.invalidAppend("this node is the writer of \(own)'s log")
        }
    }
}
