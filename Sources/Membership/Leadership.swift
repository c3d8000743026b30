import HashRing
import Replication

/// Where an order's commands go.
public enum Route: Sendable, Equatable {
    case local
    case remote(nodeID: String, peer: String)
    /// No live node leads the order (e.g. every replica is down).
    case unavailable(String)
}

/// One node's view of who leads which order, and the decisions that follow
/// from it. Pure: the membership shell builds one from its state (the ring,
/// the members, whom it has released, the leases it holds, its partition
/// switch) and asks it.
///
/// An order's leader is the first member of its preference list that may
/// lead. In `consistent` mode a member leads until this node has released it
/// (see `MembershipCore.released`): a suspect, a member cut off by the
/// partition switch, or one declared dead by gossip while it still beat here
/// may still be deciding, and its lease runs out first. In `available` mode
/// both sides of a cut lead at once, by design: a member leads while it is
/// alive or suspect and not cut off.
public struct LeadershipView: Sendable {
    public var selfID: String
    public var mode: PartitionMode
    public var replicationFactor: Int
    public var ring: HashRing
    /// The ring's nodes, sorted (what followers compare, see `VouchView`).
    public var ringNodes: [String]
    public var members: [String: Member]
    /// Members whose orders this node lets others lead.
    public var released: Set<String>
    /// False until this node has heard from the cluster it joins.
    public var joined: Bool
    /// This node may lead the orders it is first for: settled (every live
    /// peer has seen it alive in this life) and not leaving.
    public var selfMayLead: Bool
    /// Peers cut off by this node's partition switch.
    public var blocked: Set<String>
    /// Per peer: until when (monotonic ms) its lease to this node holds.
    public var leases: [String: Int64]
    public var deadAfterMs: Int64

    public init(
        selfID: String, mode: PartitionMode, replicationFactor: Int, ring: HashRing, ringNodes: [String], members: [String: Member],
        released: Set<String>, joined: Bool, selfMayLead: Bool, blocked: Set<String>, leases: [String: Int64], deadAfterMs: Int64
    ) {
        self.selfID = selfID
        self.mode = mode
        self.replicationFactor = replicationFactor
        self.ring = ring
        self.ringNodes = ringNodes
        self.members = members
        self.released = released
        self.joined = joined
        self.selfMayLead = selfMayLead
        self.blocked = blocked
        self.leases = leases
        self.deadAfterMs = deadAfterMs
    }

    public func preferenceList(_ orderID: String) -> [String] {
        ring.preferenceList(for: orderID, count: replicationFactor)
    }

    /// Whether a member may lead the orders it is first for, in this view.
    public func mayLead(_ id: String) -> Bool {
        if id == selfID { return selfMayLead }
        guard let member = members[id] else { return false }
        switch mode {
        case .consistent:
            return member.status != .left && !released.contains(id)
        case .available:
            return (member.status == .alive || member.status == .suspect) && !blocked.contains(id)
        }
    }

    /// The preference list and the member that leads the order now (nil
    /// when none of its replicas may).
    public func placement(_ orderID: String) -> (preferenceList: [String], leader: String?) {
        let list = preferenceList(orderID)
        return (list, list.first { mayLead($0) })
    }

    /// Peers alive here and not cut off, by id, with their peer addresses.
    public var reachablePeers: [String: String] {
        var peers: [String: String] = [:]
        for (id, member) in members where id != selfID && member.status == .alive && !blocked.contains(id) && !member.peer.isEmpty {
            peers[id] = member.peer
        }
        return peers
    }

    /// The nodes this node lets lead, on its ring (see `VouchView`).
    public var vouchView: VouchView {
        VouchView(ring: ringNodes, eligible: Set(members.keys.filter { mayLead($0) }))
    }

    /// Where an order's commands go at `nowMs` (monotonic). This node
    /// decides on an order only as its leader and, in `consistent` mode,
    /// while the leases of enough replicas hold (`AckRules.leaseSuffices`):
    /// once others may take the order over, it has stopped deciding. A
    /// leader cut off by the partition switch keeps its orders until its
    /// lease runs out: it may not know of the cut and may still be deciding.
    public func route(_ orderID: String, nowMs: Int64) -> Route {
        guard joined else { return .unavailable("this node is still joining the cluster") }
        let list = preferenceList(orderID)
        guard !list.isEmpty else { return .unavailable("the ring is empty") }
        guard let leader = list.first(where: { mayLead($0) }) else {
            return .unavailable("none of its replicas (\(list.joined(separator: ", "))) is reachable")
        }
        if leader == selfID {
            if mode == .consistent, !AckRules.leaseSuffices(preferenceList: list, leader: selfID, leases: leases, nowMs: nowMs) {
                return .unavailable(
                    "order \(orderID): too few of its replicas have confirmed in the last \(deadAfterMs) ms that they see this node alive, so another node may lead it; retry")
            }
            return .local
        }
        if blocked.contains(leader) {
            if case .refuse(let reason) = AckRules.requirement(
                policy: .quorum, mode: mode, preferenceList: list, leader: selfID, reachable: Set(reachablePeers.keys))
            {
                return .unavailable("order \(orderID) refuses writes on this side of a partition: \(reason)")
            }
            return .unavailable(
                "order \(orderID) is led by \(leader), which this node is cut off from; another replica leads it once \(leader) has been silent for \(deadAfterMs) ms")
        }
        return .remote(nodeID: leader, peer: members[leader]?.peer ?? "")
    }
}

/// Whether a node may lead the orders it is first for: once every live
/// peer has seen it alive in its current incarnation (until then a peer may
/// still lead its orders in its stead, and two leaders of one order would
/// write divergent streams), and not while it finds it was frozen. Pure.
public struct SettleTracker: Sendable {
    /// Peers whose own view shows this node alive, and in which life.
    private var seen: (incarnation: UInt64, peers: Set<String>) = (0, [])
    /// The incarnation in which this node was last found settled.
    public private(set) var settledIncarnation: UInt64 = 0
    /// When this node's membership last ticked (monotonic ms; 0: never).
    private var lastTickMs: Int64 = 0

    public init() {}

    /// A peer's digest shows this node as `record`.
    public mutating func noteSeen(by sender: String, as record: Member, incarnation: UInt64) {
        if seen.incarnation != incarnation { seen = (incarnation, []) }
        if record.incarnation == incarnation && record.status == .alive { seen.peers.insert(sender) }
    }

    /// A tick of membership at `nowMs`. Returns how long the node did not
    /// run when that was longer than `suspectAfterMs` (SIGSTOP, a long
    /// pause): others may have led its orders meanwhile, so it leads nothing
    /// until every peer sees it alive again.
    public mutating func tick(nowMs: Int64, suspectAfterMs: Int64) -> Int64? {
        let previous = lastTickMs
        lastTickMs = nowMs
        guard previous > 0 && nowMs - previous > suspectAfterMs else { return nil }
        settledIncarnation = 0
        seen = (0, [])
        return nowMs - previous
    }

    /// Whether the node is settled now: it has joined, its membership ran
    /// recently (requests that queued while the process was frozen run
    /// before the next tick notices), and every peer in `livePeers` (alive
    /// or suspect, not cut off: a suspect keeps its orders, so it may still
    /// stand in for this node's) has seen it alive in `incarnation`.
    /// `becameSettled` is true the first time in an incarnation.
    public mutating func settled(
        joined: Bool, incarnation: UInt64, livePeers: () -> Set<String>, nowMs: Int64, suspectAfterMs: Int64
    ) -> (settled: Bool, becameSettled: Bool) {
        guard joined else { return (false, false) }
        if lastTickMs > 0 && nowMs - lastTickMs > suspectAfterMs { return (false, false) }
        if settledIncarnation == incarnation { return (true, false) }
        let peers = seen.incarnation == incarnation ? seen.peers : []
        guard livePeers().isSubset(of: peers) else { return (false, false) }
        settledIncarnation = incarnation
        return (true, true)
    }
}
