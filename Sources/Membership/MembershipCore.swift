/// Heartbeat gossip with a suspicion phase. Pure: time comes in as
/// milliseconds, randomness as a generator, and what to send comes out as
/// directives the shell carries out.
///
/// Every tick a node bumps its heartbeat and gossips its whole view to a few
/// peers. A member whose heartbeat has not advanced for `suspectAfterMs` is
/// suspect, for `deadAfterMs` dead. Incarnations order a node's lives: a
/// higher one wins outright; at equal incarnation, `left` and `dead` stick.
///
/// Leases. A node that sees a member's heartbeat advance promises, by the
/// rule below, not to let another node take that member's orders for
/// `deadAfterMs`: it *releases* a member only once the member is dead (or
/// left) here and its heartbeat has not advanced here for that long, even
/// when the death came by gossip from another node's detector. A peer's
/// digest that shows this node alive in its current life with heartbeat
/// `h` therefore proves the peer will not release this node before `h`'s
/// send time plus `deadAfterMs`: that is the lease the peer grants
/// (`leaseExpiries`), shortened by one heartbeat interval for the clocks'
/// granularity. A leader decides only while enough replicas' leases hold
/// (see `AckRules.leaseSuffices`), so when others take its orders over it
/// has already stopped deciding on what it holds in memory.
public struct MembershipCore: Sendable {
    public let selfID: String
    public let config: MembershipConfig
    private var members: [String: Member]
    /// When each other member's heartbeat last advanced, in our clock.
    private var lastAdvanced: [String: Int64]
    /// Where the round-robin over live peers continues next tick.
    private var gossipCursor = 0
    /// When this node's recent heartbeats were first sent, oldest first:
    /// what dates a lease (a peer reports the heartbeat it last saw).
    private var heartbeatsSent: [(heartbeat: UInt64, atMs: Int64)] = []
    /// Heartbeats remembered; older ones date no lease (they are far past
    /// `deadAfterMs` at any sane heartbeat interval).
    static let heartbeatsRemembered = 64
    /// Per peer: until when (our clock) it will not release this node.
    private var leases: [String: Int64] = [:]
    /// What the last tick found released, to report changes.
    private var lastReleased: Set<String> = []
    /// When this node last ticked.
    private var lastTickMs: Int64?

    public init(selfMember: Member, config: MembershipConfig, nowMs: Int64) {
        selfID = selfMember.id
        self.config = config
        var me = selfMember
        me.status = .alive
        members = [me.id: me]
        lastAdvanced = [:]
        heartbeatsSent = [(me.heartbeat, nowMs)]
    }

    public var me: Member { members[selfID]! }

    /// Members recorded in an earlier life (id, and whether it left), not
    /// heard from yet in this one: they keep their place on the ring, dead
    /// until they are heard (any digest of theirs outranks these records),
    /// and are released only `deadAfterMs` from now, as if they had just
    /// gone silent (leases this node granted before it went down run out
    /// by then).
    public mutating func remember(_ recorded: [String: Bool], nowMs: Int64) {
        for (id, left) in recorded where id != selfID && members[id] == nil {
            members[id] = Member(id: id, http: "", peer: "", status: left ? .left : .dead, incarnation: 0)
            lastAdvanced[id] = nowMs
        }
    }

    /// Sets this node's advertised HTTP address (known once the server binds).
    public mutating func advertise(http: String) {
        members[selfID]!.http = http
    }

    /// Every known member, sorted by id.
    public var view: [Member] { members.values.sorted { $0.id < $1.id } }

    public func member(_ id: String) -> Member? { members[id] }

    public var digest: GossipDigest { GossipDigest(members: view) }

    /// Per peer, until when (in our clock, ms) it has promised not to
    /// release this node in its current incarnation: the send time of the
    /// newest own heartbeat its digests showed it alive with, plus
    /// `deadAfterMs`, less one heartbeat interval. Past entries are kept;
    /// compare them with the time of the decision.
    public var leaseExpiries: [String: Int64] { leases }

    /// Members whose orders this node lets others lead: those that left,
    /// and the dead whose heartbeat has not advanced here for
    /// `deadAfterMs` (a death learned by gossip while the member still
    /// beat here recently waits that long, so the lease this node granted
    /// runs out first).
    public func released(nowMs: Int64) -> Set<String> {
        var released: Set<String> = []
        for (id, member) in members where id != selfID {
            switch member.status {
            case .left:
                released.insert(id)
            case .dead:
                if nowMs - (lastAdvanced[id] ?? .min) >= config.deadAfterMs { released.insert(id) }
            case .alive, .suspect:
                continue
            }
        }
        return released
    }

    /// Heartbeat, failure detection, gossip.
    public mutating func tick(nowMs: Int64, random: inout some RandomNumberGenerator) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        if let lastTickMs, nowMs - lastTickMs > config.suspectAfterMs {
            // This node did not run for a while (SIGSTOP, a long pause): the
            // silence it sees is its own, not its peers'. Counting it would
            // declare every peer dead and spread that, making each refute.
            for (id, member) in members where id != selfID && (member.status == .alive || member.status == .suspect) {
                lastAdvanced[id] = nowMs
            }
        }
        lastTickMs = nowMs
        if members[selfID]!.status == .alive {
            members[selfID]!.heartbeat += 1
            heartbeatsSent.append((members[selfID]!.heartbeat, nowMs))
            if heartbeatsSent.count > Self.heartbeatsRemembered { heartbeatsSent.removeFirst(heartbeatsSent.count - Self.heartbeatsRemembered) }
        }
        for (id, member) in members where id != selfID && (member.status == .alive || member.status == .suspect) {
            let silence = nowMs - (lastAdvanced[id] ?? nowMs)
            let status: MemberStatus = silence >= config.deadAfterMs ? .dead : silence >= config.suspectAfterMs ? .suspect : .alive
            if status != member.status {
                members[id]!.status = status
                directives.append(.memberChanged(members[id]!, previous: member.status))
            }
        }
        let released = released(nowMs: nowMs)
        if released != lastReleased {
            lastReleased = released
            directives.append(.releasedChanged(released))
        }
        for target in gossipTargets(random: &random) {
            directives.append(.sendGossip(to: target, digest))
        }
        return directives
    }

    /// Merges a peer's view into ours. `sender`: the peer it came from (an
    /// authenticated connection's node id), whose report of this node
    /// renews the lease it grants.
    public mutating func receive(_ digest: GossipDigest, from sender: String? = nil, nowMs: Int64) -> [MembershipDirective] {
        var directives: [MembershipDirective] = []
        var toldDead: [String] = []
        for remote in digest.members {
            if remote.id == selfID {
                if let sender, sender != selfID { noteLease(from: sender, reporting: remote) }
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
    /// every peer it knows an address of at once, dead ones included (one
    /// it took for dead after a partition may well be back: it must not
    /// go on taking this node for crashed).
    ///
    /// Called again while it hands over, it beats once more each time: its
    /// peers see a node that left and still answers (`heardFrom`), and
    /// read what it holds.
    public mutating func leave() -> [MembershipDirective] {
        members[selfID]!.status = .left
        members[selfID]!.heartbeat += 1
        return digestToEveryPeer()
    }

    /// A node that left and could not hand over what it holds takes its
    /// departure back before it stops: a new life, alive, told to every
    /// peer it knows an address of. Its peers then find it dead, and it
    /// keeps its place on the ring, as a crashed node does.
    public mutating func rejoin() -> [MembershipDirective] {
        members[selfID]!.status = .alive
        members[selfID]!.incarnation += 1
        leases = [:]
        return digestToEveryPeer()
    }

    /// The view, to every member that has not left with a known address
    /// (dead ones included).
    private func digestToEveryPeer() -> [MembershipDirective] {
        members.values
            .filter { $0.id != selfID && $0.status != .left && !$0.peer.isEmpty }
            .sorted { $0.id < $1.id }
            .map { .sendGossip(to: $0.peer, digest) }
    }

    /// Whether `id`'s heartbeat advanced here within `withinMs` of `nowMs`
    /// (a node that left beats while it hands over).
    public func heardFrom(_ id: String, withinMs: Int64, nowMs: Int64) -> Bool {
        guard let last = lastAdvanced[id] else { return false }
        return nowMs - last <= withinMs
    }

    /// Someone says we are suspect or dead in our current life: start a new
    /// one, which outranks the rumour everywhere it spreads. Leases name a
    /// life, so none holds in the new one until peers report it.
    private mutating func refuteIfNeeded(_ remote: Member) {
        guard members[selfID]!.status == .alive, remote.status != .alive, remote.incarnation >= members[selfID]!.incarnation else { return }
        members[selfID]!.incarnation = remote.incarnation + 1
        leases = [:]
    }

    /// A peer's record of this node: alive (or suspect, which keeps its
    /// orders) in this life with heartbeat `h` renews its lease to the send
    /// time of `h` plus `deadAfterMs`, less a heartbeat interval; dead or
    /// left ends it.
    private mutating func noteLease(from sender: String, reporting record: Member) {
        guard record.incarnation == members[selfID]!.incarnation else { return }
        switch record.status {
        case .alive, .suspect:
            // A heartbeat older than what is remembered dates nothing.
            guard let sent = heartbeatsSent.last(where: { $0.heartbeat == record.heartbeat }) else { return }
            let expiry = sent.atMs + config.deadAfterMs - config.heartbeatIntervalMs
            leases[sender] = max(leases[sender] ?? .min, expiry)
        case .dead, .left:
            leases[sender] = nil
        }
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
