public enum MemberStatus: String, Sendable, CaseIterable {
    case alive, suspect, dead, left
}

/// One node as a member of the cluster.
public struct Member: Sendable, Equatable {
    public var id: String
    public var http: String
    public var peer: String
    public var status: MemberStatus
    /// Grows each time the node starts (and when it refutes a rumour of its
    /// death), so a restarted node outranks what was said of its last life.
    public var incarnation: UInt64
    /// Grows every tick while the node lives; others watch it advance.
    public var heartbeat: UInt64

    public init(id: String, http: String, peer: String, status: MemberStatus = .alive, incarnation: UInt64, heartbeat: UInt64 = 0) {
        self.id = id
        self.http = http
        self.peer = peer
        self.status = status
        self.incarnation = incarnation
        self.heartbeat = heartbeat
    }
}

public struct MembershipConfig: Sendable {
    public var heartbeatIntervalMs: Int64 = 200
    /// No new heartbeat for this long: suspect.
    public var suspectAfterMs: Int64 = 750
    /// No new heartbeat for this long: dead.
    public var deadAfterMs: Int64 = 1500
    /// Peers gossiped to per tick.
    public var gossipFanout: Int = 3
    /// Peer addresses to gossip to while no other member is known.
    public var seeds: [String] = []
    /// How long a leaving node (SIGTERM) waits for every other member to
    /// hold the ring without it before it stops as if it had crashed.
    public var handoverTimeoutMs: Int64 = 15_000

    public init() {}
}

public enum MembershipDirective: Sendable, Equatable {
    /// Send this digest to the peer address.
    case sendGossip(to: String, GossipDigest)
    /// A member appeared, changed status or started a new incarnation
    /// (`previous` nil: first seen).
    case memberChanged(Member, previous: MemberStatus?)
    /// The members this node has released changed (see
    /// `MembershipCore.released(nowMs:)`): their orders may move.
    case releasedChanged(Set<String>)
}
