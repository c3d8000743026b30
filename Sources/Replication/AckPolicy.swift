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
