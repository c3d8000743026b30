import LogStorage
import OrderDomain

/// The holder's side of log shipping: what a fetch of a log gets. Pure; the
/// replicator reads the events and waits for commits, this decides.
///
/// A follower asks for an origin's log from offset N; for the origin's own
/// log that request also says the follower holds everything before N (its
/// acknowledgement, see `AckTracker`).
public enum FetchServing {
    /// A batch stops growing past this many bytes of payload (each event
    /// counts 128 more for its other columns), well inside the frame limit.
    public static let batchBytesMax = 1 << 20

    /// Why a fetch of the origin's own log from `fromOffset` is refused:
    /// the follower holds offsets this log never committed (this node's
    /// data was replaced or lost its tail). Nil: serve it.
    public static func ownLogRefusal(follower: String, origin: String, fromOffset: Int64, committed: Int64) -> String? {
        guard fromOffset - 1 > committed else { return nil }
        return "\(follower) asks from offset \(fromOffset) but \(origin)'s log ends at \(committed)"
    }

    /// Whether a follower's copy agrees with this log at `offset`, where it
    /// stands: the event `followerSaw` (an id) was there when it copied,
    /// and must still be. A log that went back in time (a replaced disk, a
    /// restore) would otherwise hand the follower other events at offsets
    /// it has passed already; the refusal says so, and the follower copies
    /// nothing more of this log until an operator looks.
    /// `followerSaw` and `checksum`: the id and checksum of the event at
    /// `offset` when the follower copied it. A log restored from a backup
    /// keeps its log id, so an event it writes again at an offset has the
    /// same id as the one it replaced: the checksum tells them apart.
    /// `held`: whether the follower kept that event (its placement keeps
    /// only its own orders). One it only passed may be gone from a log put
    /// back from the peers' copies, which skips the offsets of events no
    /// peer kept: a hole there is no disagreement (another event would be).
    public static func identityRefusal(
        follower: String, origin: String, offset: Int64, followerSaw: String, checksum: UInt32, held: Bool = true, here: EventRecord?
    ) -> String? {
        guard let here else {
            if !held { return nil }
            return "\(origin)'s log holds no event at offset \(offset), where \(follower)'s copy holds \(followerSaw): the log went back"
        }
        let copy = held ? "\(follower)'s copy holds \(followerSaw)" : "\(follower) passed \(followerSaw)"
        if here.eventID != followerSaw {
            return "\(origin)'s log holds \(here.eventID) at offset \(offset), where \(copy): the log went back"
        }
        if here.checksum != checksum {
            return "\(origin)'s log holds another \(here.eventID) at offset \(offset) (checksum \(here.checksum), \(held ? "\(follower)'s copy" : "what \(follower) passed") \(checksum)): the log went back"
        }
        return nil
    }

    /// The own events a batch carries: only committed ones (a follower never
    /// copies what a power cut could take back), and no more than
    /// `batchBytesMax` of them (at least one).
    /// `scanned`: what a scan of at most `limit` own events from the
    /// fetch's offset read. `complete`: the batch holds every committed one
    /// from there (the scan reached the end or went past `committed`, and
    /// the byte limit cut nothing).
    public static func ownBatch(_ scanned: [EventRecord], limit: Int, committed: Int64) -> (events: [EventRecord], complete: Bool) {
        let committedOnes = scanned.filter { $0.offset <= committed }
        let batch = capped(committedOnes)
        let reachedEnd = scanned.count < limit || (scanned.last?.offset ?? 0) > committed
        return (batch, reachedEnd && batch.count == committedOnes.count)
    }

    /// The first events of `events` that fit in one batch (at least one).
    public static func capped(_ events: [EventRecord]) -> [EventRecord] {
        var bytes = 0
        var count = 0
        for event in events {
            bytes += event.payload.utf8.count + 128
            if count > 0 && bytes > batchBytesMax { break }
            count += 1
        }
        return count == events.count ? events : Array(events.prefix(count))
    }

    /// The positions a reply of the origin's own log reports, and the
    /// committed end. A batch that holds every own event from `fromOffset`
    /// to `committed` (`complete`, see `ownBatch`) brings the follower to
    /// `committed`: a log put back from peers' copies has gaps (offsets a
    /// lost log used that no peer kept), which the follower must pass.
    /// Otherwise through its last event (more follow), or where the
    /// follower stands.
    public static func ownReply(_ batch: [EventRecord], complete: Bool, fromOffset: Int64, committed: Int64) -> (through: Int64, holderLast: Int64) {
        if complete { return (max(committed, fromOffset - 1), committed) }
        return (batch.last?.offset ?? fromOffset - 1, committed)
    }

    /// The positions a reply of a copied log reports. A copy has gaps (this
    /// holder keeps only its own orders), so a batch that holds every event
    /// the holder has from `fromOffset` brings the follower to this holder's
    /// position in that log; one that is full, or cut by the byte limit,
    /// only to its last event (more follow). `position`: how far this holder
    /// has copied the log; `scanned`: the events read for the batch (at most
    /// `limit`), of which `batch` is what fits.
    public static func copyReply(_ batch: [EventRecord], scanned: Int, limit: Int, fromOffset: Int64, position: Int64)
        -> (through: Int64, holderLast: Int64)
    {
        let last = batch.last?.offset ?? 0
        let more = scanned == limit || batch.count < scanned
        let through = more && !batch.isEmpty ? last : max(position, last, fromOffset - 1)
        return (through, max(position, last))
    }
}

/// The follower's side of log shipping: how far it has copied each log,
/// what it checks of a batch before storing it, and when it knows it holds
/// every acknowledged event of its orders. Pure; the replicator's tail
/// loops fetch and store, this decides.
public struct FollowerState: Sendable {
    public struct CopyStatus: Sendable, Equatable {
        public var through: Int64
        public var holderLastOffset: Int64
        public var updatedMs: Int64
    }

    /// Logs this node copies: how far, and the holder's newest offset.
    public private(set) var copies: [String: CopyStatus] = [:]
    /// The ring whose orders this node holds in full (see backfill).
    public var backfilledRing: Set<String>?
    /// The ring moved away from `backfilledRing` and back before a backfill
    /// of the ring in between finished: writes made under that ring may be
    /// missing here, so the ring counts as held only once it is backfilled
    /// again.
    public var backfillStale = false

    /// Whether this node holds every order `ring` gives it.
    public func holds(_ ring: Set<String>?) -> Bool { backfilledRing == ring && !backfillStale }

    public init() {}

    /// What to do with a batch of `origin`'s log asked for from
    /// `position + 1`.
    public enum BatchVerdict: Sendable, Equatable {
        /// Store these events (those of this node's orders) and move the
        /// position to `through`.
        case store(through: Int64)
        /// Nothing new: keep the position.
        case unchanged
        /// Events of another log, or at or before the position: drop it all.
        case reject(String)
    }

    public static func verdict(origin: String, position: Int64, events: [EventRecord], throughOffset: Int64) -> BatchVerdict {
        guard events.allSatisfy({ $0.origin == origin && $0.offset > position }) else {
            return .reject("a batch held events of the wrong log or position")
        }
        return throughOffset > position ? .store(through: throughOffset) : .unchanged
    }

    /// A reply to a fetch of `origin`'s log came back: the copy is now
    /// `through`, the holder's end `holderLastOffset`.
    public mutating func noteCopy(origin: String, through: Int64, holderLastOffset: Int64, nowMs: Int64) {
        copies[origin] = CopyStatus(through: through, holderLastOffset: holderLastOffset, updatedMs: nowMs)
    }
}

/// How a new leader makes sure it holds every acknowledged event of an
/// order before it decides: it asks the order's other replicas.
public enum GatherRule {
    /// Replicas of a list of `count` that must have answered (this node
    /// included) before none of the order's acknowledged events can be
    /// missing: they share a member with any majority of the list, and with
    /// any majority of the list it was before one member left, less that
    /// member. A ring change copies nothing to a member that already was
    /// a replica of the order, so a write the old list acknowledged without
    /// it is on the others only. For an odd list the two are the same; for
    /// an even one it takes one more. (Found by seed 92443, `--customers-
    /// per-second 40 --faults restore,upgrade,crash,partition,disk`, a
    /// release build of 0c51cbf: `api-2` and `api-3` acknowledged an order
    /// while `api-1` was down; `api-3` then left, and `api-1`, behind on
    /// `api-2`'s log, led the list of two alone and answered that the
    /// order did not exist.)
    public static func repliesNeeded(replicas count: Int) -> Int {
        count - (count + 1) / 2 + 1
    }
}

/// What the replicas that granted a leader's term held when they granted
/// it (protocol 9), and how far this node's own copies have caught up with
/// that.
///
/// A replica that grants a term acknowledges no write of an older term
/// from then on, so every write it ever acknowledged in an older term is
/// among the events it held at that moment, each at or below the highest
/// offset of its log the replica held (`held`). Once this node has copied
/// every origin's log at least that far (its copies keep every event of the
/// orders it leads), it holds whatever that replica held of those orders.
/// When that is true of enough replicas that, with this node, they meet
/// every majority of the list (`GatherRule.repliesNeeded`), and this node's
/// log holds no event of an order, no replica acknowledged one: the leader
/// may decide on it without asking the replicas for its events. A gather
/// would have come back empty.
public struct TermFrontier: Sendable, Equatable {
    public let term: Term
    /// Per replica that granted the term with its offsets, the origins this
    /// node's copies have not reached yet, and how far they must.
    public private(set) var pending: [String: [String: Int64]]
    /// Replicas whose held offsets this node's copies have all reached.
    public private(set) var caughtUp: Set<String> = []
    /// `covers` has answered true once (it then always does).
    public private(set) var isCovered = false

    /// `held`: per granting replica, its held offsets. Origins this node
    /// writes itself (`own`) are left out: its own log holds its events.
    /// `positions`: how far this node has copied each origin now.
    public init(term: Term, held: [String: [String: Int64]], own: String, positions: [String: Int64]) {
        self.term = term
        self.pending = [:]
        for (replica, offsets) in held where replica != own {
            pending[replica] = offsets.filter { origin, offset in origin != own && (positions[origin] ?? 0) < offset }
        }
        refresh { positions[$0] }
    }

    /// Whether enough replicas (this node counting as one) are caught up for
    /// a list of `replicas` members, with the copies now at `position`.
    public mutating func covers(replicas count: Int, position: (String) -> Int64?) -> Bool {
        let needed = GatherRule.repliesNeeded(replicas: count) - 1
        if caughtUp.count < needed { refresh(position) }
        isCovered = isCovered || caughtUp.count >= needed
        return caughtUp.count >= needed
    }

    private mutating func refresh(_ position: (String) -> Int64?) {
        for (replica, offsets) in pending {
            let left = offsets.filter { origin, offset in (position(origin) ?? 0) < offset }
            if left.isEmpty {
                caughtUp.insert(replica)
                pending[replica] = nil
            } else if left.count != offsets.count {
                pending[replica] = left
            }
        }
    }
}

/// Reading a whole log again, batch by batch, after the ring changed.
public enum BackfillProgress {
    /// Where the next batch starts after one that brought `events` (the
    /// last at `lastEventOffset`) and reported `throughOffset`; nil when the
    /// log is read through `target` (the holder's end at the first reply),
    /// or the reply moved nothing.
    public static func next(position: Int64, throughOffset: Int64, lastEventOffset: Int64?, eventCount: Int, target: Int64) -> Int64? {
        let next = max(position, throughOffset, lastEventOffset ?? 0)
        if eventCount == 0 || next >= target || next == position { return nil }
        return next
    }
}
