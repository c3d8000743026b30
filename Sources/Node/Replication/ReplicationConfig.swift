import LogStorage
import OrderDomain
import Replication

/// Tunables of log shipping; every limit in one place.
public struct ReplicationConfig: Sendable {
    public var acks: AckPolicy = .quorum
    public var partitionMode: PartitionMode = .consistent
    /// A reply waits at most this long for its replicas; then the client
    /// gets 503 (the write is not acknowledged; a retry is safe).
    public var ackTimeout: Duration = .seconds(2)
    /// How long a new leader waits for the other replicas of an order.
    public var gatherTimeout: Duration = .seconds(1)
    /// With nothing new, a fetch waits this long at the origin for a commit.
    public var fetchWaitMs: UInt32 = 500
    public var fetchEventsMax: UInt32 = 2000
    /// Pause before a follower retries a peer that failed.
    public var retryDelay: Duration = .milliseconds(100)
    /// A backfill that could not read every log is tried again after this.
    public var backfillRetryDelay: Duration = .seconds(1)
    /// How often the log of a released member is read again from the live
    /// peers' copies.
    public var repairInterval: Duration = .seconds(3)
    /// How often the set of followed peers is compared with the view.
    public var followInterval: Duration = .milliseconds(100)

    public init() {}
}

/// What replication needs to know of the cluster (ClusterMembership in a
/// node; a fixed table in tests).
public protocol ReplicaDirectory: Sendable {
    var nodeID: String { get }
    /// False while the node has not yet heard from the cluster it joins.
    var joined: Bool { get }
    /// The order's replicas, owner first.
    func preferenceList(for orderID: ClientID) -> [String]
    /// Peers alive in this node's view and not cut off, by id, with their
    /// peer addresses.
    func reachablePeers() -> [String: String]
    /// Grows whenever the view changes: state loaded under an older view
    /// may miss what another leader wrote, so it is reloaded.
    var epoch: UInt64 { get }
    /// The nodes on the ring (every member that has not left): when it
    /// changes, orders move and each node backfills the ones it gained.
    var ringMembers: Set<String> { get }
    /// The same, sorted.
    var ringNodes: [String] { get }
    /// Replicas per order (`--replication-factor`).
    var replicationFactor: Int { get }
    /// This node leads the order in its current view, and (in `consistent`
    /// mode) the leases of enough of its replicas hold.
    func leads(_ orderID: ClientID) -> Bool
    /// Why this node does not lead the order now; nil when it does.
    func whyNotLeading(_ orderID: ClientID) -> String?
    /// Which nodes this node lets lead, on which ring: what it tells the
    /// origins it copies, so they count its copies only of writes it vouches
    /// for.
    var vouchView: VouchView { get }
    /// Every live peer has seen this node alive in its current incarnation
    /// (so no peer still stands in for it).
    var settled: Bool { get }
    /// Members whose orders this node lets others lead (dead long enough, or
    /// left): their logs are read from the live peers' copies.
    var released: Set<String> { get }
    /// Members this node knows left the cluster for good (SIGTERM): a
    /// recovering node does not wait for them.
    var departed: Set<String> { get }
    /// Those of `departed` not cut off, with their peer addresses: a
    /// graceful stop runs on for a while, and a restarted node comes back.
    func departedPeers() -> [String: String]
    /// Those of `departed` that have stopped (silent for a whole
    /// `--dead-after`): a handover they ran has ended.
    func departedAndStopped() -> Set<String>
    /// The incarnation a member of `departed` left in (nil: not known to
    /// have left): it writes nothing more in it.
    func departedIncarnation(of id: String) -> UInt64?
    /// This node is leaving (SIGTERM): it takes nothing over from another
    /// that leaves.
    var isLeaving: Bool { get }
    /// This node's incarnation as its peers know it: above every
    /// incarnation of its earlier lives once they have seen it alive, even
    /// when its wall clock went back (it refutes what they knew).
    var incarnation: UInt64 { get }
}

extension ReplicaDirectory {
    public func departedPeers() -> [String: String] { [:] }
    public func departedAndStopped() -> Set<String> { departed }
    public func departedIncarnation(of id: String) -> UInt64? { nil }
    public var isLeaving: Bool { false }
    public var incarnation: UInt64 { 0 }
}

/// What a transactor asks of replication. MUST be safe to call from any task.
public protocol ReplicationCoordinator: Sendable {
    /// Throws `EngineError.unavailable` when this node may not write the
    /// order now (consistent mode without a majority of its replicas).
    func admit(_ orderID: ClientID) throws
    /// The leadership term this node decides the order's commands in, newer
    /// than `floor` (consistent mode; nil otherwise). Throws
    /// `EngineError.unavailable` when no majority of the order's replicas
    /// grants one.
    func term(for orderID: ClientID, above floor: Term) async throws -> Term?
    /// Copies here every event of the order that the other replicas hold and
    /// this node lacks; in consistent mode it counts only replicas that
    /// granted `term`, and needs a majority. MUST run before a new
    /// activation decides. True when it found that neither this node's log
    /// nor any replica that counts held anything of the order (it has no
    /// state yet); false otherwise, or when it did not look.
    @discardableResult
    func gather(_ orderID: ClientID, term: Term?) async throws -> Bool
    /// Returns once the order's replicas hold this node's log through
    /// `offset`, as `--acks` requires, each vouching for `term`; throws
    /// `EngineError.unavailable` when they do not in time.
    func awaitReplicas(_ orderID: ClientID, through offset: Int64, term: Term?) async throws
    /// The same for a majority of the order's replicas at the most (`--acks
    /// all` asks no more than `quorum` does): for an event written again in
    /// this node's term (`Transactor.anchorHead`), which a later leader
    /// must find wherever it gathers, as any acknowledged write.
    func awaitMajority(_ orderID: ClientID, through offset: Int64, term: Term?) async throws
    /// Throws `EngineError.unavailable` when this node no longer leads the
    /// order or holds `term`: a write it finished replicating meanwhile is
    /// not acknowledged.
    func confirmLeadership(_ orderID: ClientID, term: Term?) throws
    /// Returns once a majority of the order's replicas confirmed, after this
    /// call, that this node still holds `term` for it (consistent mode), so
    /// a read answered now is not older than any acknowledged write.
    /// Throws `EngineError.unavailable` otherwise.
    func confirmRead(_ orderID: ClientID, term: Term?) async throws
    /// Throws `EngineError.unavailable` unless this node leads the order
    /// now. MUST be called right before deciding, with no suspension between
    /// it and the append of what was decided.
    func checkLeadership(_ orderID: ClientID) throws
    /// What the append of a decision in `term` checks right before it
    /// commits (the term still held, the order still led).
    func commitCheck(_ orderID: ClientID, term: Term?) -> CommitCheck?
    /// Whether this node still holds `term` for the order and leads it.
    func holds(_ term: Term?, for orderID: ClientID) -> Bool
    /// Whether this node leads the order now (its timers fire here).
    func leads(_ orderID: ClientID) -> Bool
    var epoch: UInt64 { get }
}

extension ReplicationCoordinator {
    public func awaitMajority(_ orderID: ClientID, through offset: Int64, term: Term?) async throws {
        try await awaitReplicas(orderID, through: offset, term: term)
    }
}
