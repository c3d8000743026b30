import OrderDomain

/// When a leader may answer a client: after its own fsync, after a majority
/// of the order's preference list holds the events, or after every live
/// replica of it does.
public enum AckPolicy: String, Sendable, CaseIterable {
    case leader, quorum, all
}

/// What a side of a partition does with an order it cannot replicate.
public enum PartitionMode: String, Sendable, CaseIterable {
    /// Refuse writes to an order when a majority of its preference list is
    /// out of reach: no two sides ever both accept writes for it.
    case consistent
    /// Keep serving; divergent streams are merged when the partition heals.
    case available
}

/// How many followers must hold a write before its reply goes out, or why
/// the write must be refused.
public enum AckRequirement: Sendable, Equatable {
    case followers(Set<String>, needed: Int)
    case refuse(String)
}

public enum AckRules {
    /// The acknowledgements a write to an order needs.
    ///
    /// - `leader`: none.
    /// - `quorum`: a majority of the preference list, the leader counting as
    ///   one. In `consistent` mode a leader that cannot reach that many
    ///   replicas refuses before writing; in `available` mode it settles for
    ///   the replicas it can reach.
    /// - `all`: every replica of the list that is alive now.
    ///
    /// - Parameters:
    ///   - preferenceList: the order's replicas, owner first.
    ///   - leader: the node deciding (normally in the list; a node outside
    ///     it counts as one more copy but no member of the majority).
    ///   - reachable: replicas the leader sees alive and can reach.
    public static func requirement(
        policy: AckPolicy, mode: PartitionMode, preferenceList: [String], leader: String, reachable: Set<String>
    ) -> AckRequirement {
        let replicas = Set(preferenceList).subtracting([leader])
        let live = replicas.intersection(reachable)
        let majority = preferenceList.count / 2 + 1
        let selfCounts = preferenceList.contains(leader) ? 1 : 0
        if mode == .consistent && live.count + selfCounts < majority {
            return .refuse(
                "only \(live.count + selfCounts) of the \(preferenceList.count) replicas of this order are reachable; a majority (\(majority)) is needed")
        }
        switch policy {
        case .leader:
            return .followers([], needed: 0)
        case .quorum:
            let needed = max(0, majority - selfCounts)
            return .followers(live, needed: min(needed, live.count))
        case .all:
            return .followers(live, needed: live.count)
        }
    }
}

extension AckRules {
    /// Replicas, besides the leader, whose leases must hold for it to
    /// decide on an order: enough that with the leader they meet every
    /// majority of the preference list (`list - majority` of them). Another
    /// node's write needs a majority that vouches for it (`Vouching`), and
    /// a replica whose lease to this leader holds vouches for no one else,
    /// so while they hold no other node can have a write acknowledged and
    /// what this leader holds is complete.
    public static func leasesNeeded(preferenceList: [String], leader: String) -> Int {
        guard preferenceList.contains(leader) else { return preferenceList.count }
        return preferenceList.count - (preferenceList.count / 2 + 1)
    }

    /// Whether the leases a leader holds at `nowMs` let it decide on an
    /// order (see `leasesNeeded`). `leases`: per peer, until when its lease
    /// holds.
    public static func leaseSuffices(preferenceList: [String], leader: String, leases: [String: Int64], nowMs: Int64) -> Bool {
        let needed = leasesNeeded(preferenceList: preferenceList, leader: leader)
        guard needed > 0 else { return true }
        var holding = 0
        for replica in preferenceList where replica != leader && (leases[replica] ?? .min) > nowMs {
            holding += 1
            if holding >= needed { return true }
        }
        return false
    }
}

/// What a follower tells the origins it copies about its view: which nodes
/// it lets lead (those it has not released, itself once settled) on which
/// ring. An origin counts a follower's copy of an order's write as an
/// acknowledgement only when, in the follower's view, the origin leads the
/// order: the first node of the order's preference list it lets lead is
/// the origin. So of two nodes that both believe they lead an order (one
/// with a stale view), at most one is acknowledged by any follower, and a
/// majority acknowledges at most one.
public struct VouchView: Sendable, Equatable {
    /// Every node on the follower's ring, sorted.
    public var ring: [String]
    /// The nodes the follower lets lead.
    public var eligible: Set<String>
    /// The terms the follower has granted, per preference list (those that
    /// hold the node it tells): it vouches for no write of an older term.
    public var promises: [String: Term]
    /// Grows with each view a follower sends: an origin keeps the newest
    /// (a view travels on several messages, which may arrive out of order).
    public var sequence: UInt64

    public init(ring: [String], eligible: Set<String>, promises: [String: Term] = [:], sequence: UInt64 = 0) {
        self.ring = ring
        self.eligible = eligible
        self.promises = promises
        self.sequence = sequence
    }

    /// The node this view lets lead an order with this preference list.
    public func leader(of preferenceList: [String]) -> String? {
        preferenceList.first { eligible.contains($0) }
    }
}

/// What a write must be vouched for by: the order's preference list and the
/// ring it comes from, the node that wrote it, and (consistent mode) the
/// term it was decided in.
public struct Fence: Sendable, Equatable {
    public var preferenceList: [String]
    /// The writer's ring, sorted: a follower on another ring (a join or a
    /// departure it has not seen yet) would place the order elsewhere, so
    /// its copy does not count until the rings agree.
    public var ring: [String]
    public var leader: String
    /// The term of the write: a follower counts only while the term it has
    /// granted for the preference list is this one.
    public var term: Term?

    public init(preferenceList: [String], ring: [String], leader: String, term: Term? = nil) {
        self.preferenceList = preferenceList
        self.ring = ring
        self.leader = leader
        self.term = term
    }

    /// Whether a follower with this view vouches for the write.
    public func isVouched(by view: VouchView?) -> Bool {
        guard let view, view.ring == ring else { return false }
        guard view.leader(of: preferenceList) == leader else { return false }
        if let term, view.promises[TermGroup.key(preferenceList)] != term { return false }
        return true
    }
}

/// The preference list a term is granted for, as a key.
public enum TermGroup {
    public static func key(_ preferenceList: [String]) -> String { preferenceList.joined(separator: ",") }
    public static func members(_ key: String) -> [String] { key.split(separator: ",").map(String.init) }
}
