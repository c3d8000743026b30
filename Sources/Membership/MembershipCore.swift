/// Heartbeat gossip with a suspicion phase. Pure: time comes in as
/// milliseconds, randomness as a generator, and what to send comes out as
/// directives the shell carries out.
///
/// Every tick a node bumps its heartbeat and gossips its whole view to a few
/// peers. A member whose heartbeat has not advanced for `suspectAfterMs` is
/// suspect, for `deadAfterMs` dead. Incarnations order a node's lives: a
/// higher one wins outright; at equal incarnation, `left` and `dead` stick.
public struct MembershipCore: Sendable {
    public let selfID: String
    public let config: MembershipConfig
    private var members: [String: Member]
    /// When each other member's heartbeat last advanced, in our clock.
    private var lastAdvanced: [String: Int64]
    /// Where the round-robin over live peers continues next tick.
    private var gossipCursor = 0

    public init(selfMember: Member, config: MembershipConfig, nowMs: Int64) {
        selfID = selfMember.id
        self.config = config
        var me = selfMember
        me.status = .alive
        members = [me.id: me]
        lastAdvanced = [:]
    }

    public var me: Member { members[selfID]! }

    /// Sets this node's advertised HTTP address (known once the server binds).
    public mutating func advertise(http: String) {
        members[selfID]!.http = http
    }

    /// Every known member, sorted by id.
    public var view: [Member] { members.values.sorted { $0.id < $1.id } }

    public func member(_ id: String) -> Member? { members[id] }

    public var digest: GossipDigest { GossipDigest(members: view) }

    /// Heartbeat, failure detection, gossip.
    public mutating func tick(nowMs: Int64, random: inout some RandomNumberGenerator) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        if members[selfID]!.status == .alive { members[selfID]!.heartbeat += 1 }
        for (id, member) in members where id != selfID && (member.status == .alive || member.status == .suspect) {
            let silence = nowMs - (lastAdvanced[id] ?? nowMs)
            let status: MemberStatus = silence >= config.deadAfterMs ? .dead : silence >= config.suspectAfterMs ? .suspect : .alive
            if status != member.status {
                members[id]!.status = status
                directives.append(.memberChanged(members[id]!, previous: member.status))
            }
        }
        for target in gossipTargets(random: &random) {
            directives.append(.sendGossip(to: target, digest))
        }
        return directives
    }

    /// Merges a peer's view into ours.
    public mutating func receive(_ digest: GossipDigest, nowMs: Int64) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        var toldDead: [String] = []
        for remote in digest.members {
            if remote.id == selfID {
                refuteIfNeeded(remote)
                continue
            }
            guard let local = members[remote.id] else {
                members[remote.id] = remote
                lastAdvanced[remote.id] = nowMs
                directives.append(.memberChanged(remote, previous: nil))
                continue
            }
            var merged = local
            if remote.incarnation > local.incarnation {
                merged = remote
                // A new life: it counts as heard from now, whatever the
                // sender concluded about it.
                if remote.status == .suspect { merged.status = .alive }
                lastAdvanced[remote.id] = nowMs
            } else if remote.incarnation == local.incarnation {
                if remote.heartbeat > local.heartbeat {
                    merged.heartbeat = remote.heartbeat
                    lastAdvanced[remote.id] = nowMs
                    if local.status == .suspect { merged.status = .alive }
                    // Dead here, yet still beating and unaware of it: it may
                    // go on leading orders that others lead now. Tell it at
                    // once (it refutes with a new incarnation and stops
                    // leading until every peer sees it alive), rather than
                    // wait for an occasional digest to the dead.
                    if local.status == .dead && remote.status == .alive && !local.peer.isEmpty {
                        toldDead.append(local.peer)
                    }
                }
                if remote.status == .left || (remote.status == .dead && local.status != .left) {
                    merged.status = remote.status
                }
                merged.http = remote.http.isEmpty ? local.http : remote.http
                merged.peer = remote.peer.isEmpty ? local.peer : remote.peer
            }
            if merged != local {
                members[remote.id] = merged
                // A new life may come with new addresses: report it even
                // when the status reads the same.
                if merged.status != local.status || merged.incarnation != local.incarnation {
                    directives.append(.memberChanged(merged, previous: local.status))
                }
            }
        }
        if !toldDead.isEmpty {
            let digest = self.digest
            directives += toldDead.map { .sendGossip(to: $0, digest) }
        }
        return directives
    }

    /// Announces that this node leaves: it stops heartbeating and tells
    /// every live peer at once.
    public mutating func leave() -> [MembershipDirective] {
        members[selfID]!.status = .left
        return members.values
            .filter { $0.id != selfID && ($0.status == .alive || $0.status == .suspect) }
            .sorted { $0.id < $1.id }
            .map { .sendGossip(to: $0.peer, digest) }
    }

    /// Someone says we are suspect or dead in our current life: start a new
    /// one, which outranks the rumour everywhere it spreads.
    private mutating func refuteIfNeeded(_ remote: Member) {
        guard members[selfID]!.status == .alive, remote.status != .alive, remote.incarnation >= members[selfID]!.incarnation else { return }
        members[selfID]!.incarnation = remote.incarnation + 1
    }

    /// Live peers in turn, `gossipFanout` a tick: every peer hears from us
    /// at least every ⌈peers / fanout⌉ ticks, which bounds how stale our
    /// heartbeat can get there (random choice would leave unlucky gaps).
    private mutating func gossipTargets(random: inout some RandomNumberGenerator) -> [String] {
        let peers = members.values
            .filter { $0.id != selfID && ($0.status == .alive || $0.status == .suspect) && !$0.peer.isEmpty }
            .map(\.peer)
            .sorted()
        if peers.isEmpty {
            return config.seeds.filter { $0 != me.peer }
        }
        var targets: [String] = []
        for offset in 0..<min(config.gossipFanout, peers.count) {
            targets.append(peers[(gossipCursor + offset) % peers.count])
        }
        gossipCursor = (gossipCursor + targets.count) % peers.count
        // Dead members get an occasional digest too, so a partition that
        // heals, or a node back under its old incarnation, is found again.
        let dead = members.values.filter { $0.id != selfID && $0.status == .dead && !$0.peer.isEmpty }.map(\.peer).sorted()
        if let revisit = dead.randomElement(using: &random), random.next() % 4 == 0 { targets.append(revisit) }
        return targets
    }
}
