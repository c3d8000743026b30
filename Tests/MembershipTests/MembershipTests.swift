import Membership
import OrderDomain
import Testing

/// N membership cores on a simulated network: a fake clock in steps, gossip
/// delivered after a (seeded, random) delay, nodes that can stop or restart.
struct SimulatedCluster {
    var cores: [String: MembershipCore] = [:]
    var stopped: Set<String> = []
    var nowMs: Int64 = 0
    var random: SplitMix64
    var maxDelayMs: Int64 = 0
    var inFlight: [(at: Int64, from: String, to: String, digest: GossipDigest)] = []
    var config = MembershipConfig()

    init(nodes: Int, seed: UInt64, maxDelayMs: Int64 = 0) {
        random = SplitMix64(seed: seed)
        self.maxDelayMs = maxDelayMs
        config.seeds = ["peer-0"]
        for index in 0..<nodes { start("n\(index)", incarnation: 1) }
    }

    static func peer(_ id: String) -> String { "peer-" + id.dropFirst() }

    mutating func start(_ id: String, incarnation: UInt64) {
        let member = Member(id: id, http: "http-" + id.dropFirst(), peer: Self.peer(id), incarnation: incarnation)
        cores[id] = MembershipCore(selfMember: member, config: config, nowMs: nowMs)
        stopped.remove(id)
    }

    /// Advances one heartbeat interval: every running node ticks, then
    /// whatever is due is delivered.
    mutating func step() {
        nowMs += config.heartbeatIntervalMs
        for id in cores.keys.sorted() where !stopped.contains(id) {
            for directive in cores[id]!.tick(nowMs: nowMs, random: &random) {
                if case .sendGossip(let to, let digest) = directive { send(digest, from: id, to: to) }
            }
        }
        let due = inFlight.filter { $0.at <= nowMs }
        inFlight.removeAll { $0.at <= nowMs }
        for message in due {
            guard let id = cores.keys.first(where: { Self.peer($0) == message.to }), !stopped.contains(id) else { continue }
            for directive in cores[id]!.receive(message.digest, from: message.from, nowMs: nowMs) {
                if case .sendGossip(let to, let digest) = directive { send(digest, from: id, to: to) }
            }
        }
    }

    /// Messages from a node to a peer address that are dropped (a one-way cut).
    var cut: Set<String> = []

    mutating func send(_ digest: GossipDigest, from sender: String, to peer: String) {
        guard !cut.contains("\(sender)>\(peer)") else { return }
        let delay = maxDelayMs == 0 ? 0 : Int64(random.next() % UInt64(maxDelayMs + 1))
        inFlight.append((nowMs + delay, sender, peer, digest))
    }

    /// The lease rule: no node is released by a peer whose lease to it
    /// still holds (so a leader stops deciding before others take over).
    func leaseViolations() -> [String] {
        var violations: [String] = []
        for (holder, core) in cores {
            for (granter, expiry) in core.leaseExpiries where expiry > nowMs {
                guard let other = cores[granter] else { continue }
                if other.released(nowMs: nowMs).contains(holder) && other.member(holder)?.incarnation == core.me.incarnation {
                    violations.append("at \(nowMs) ms \(granter) released \(holder), whose lease from it holds until \(expiry)")
                }
            }
        }
        return violations
    }

    func status(of id: String, seenBy observer: String) -> MemberStatus? {
        cores[observer]!.member(id)?.status
    }

    func everyone(except excluded: Set<String> = [], agrees check: (MembershipCore) -> Bool) -> Bool {
        cores.filter { !excluded.contains($0.key) && !stopped.contains($0.key) }.values.allSatisfy(check)
    }

    /// Steps until `condition` holds; returns the ms it took, nil past `limitMs`.
    mutating func run(until limitMs: Int64, _ condition: (SimulatedCluster) -> Bool) -> Int64? {
        let start = nowMs
        while nowMs - start <= limitMs {
            if condition(self) { return nowMs - start }
            step()
        }
        return nil
    }
}

@Suite struct MembershipTests {
    @Test(arguments: 0..<10)
    func nodesJoiningThroughOneSeedConvergeOnOneView(seed: UInt64) {
        var cluster = SimulatedCluster(nodes: 5, seed: seed)
        let took = cluster.run(until: 5000) { cluster in
            cluster.everyone { core in core.view.count == 5 && core.view.allSatisfy { $0.status == .alive } }
        }
        #expect(took != nil, "seed \(seed): views did not converge in 5 s")
    }

    @Test(arguments: 0..<10)
    func aStoppedNodeIsSuspectedThenDeclaredDeadWithinTheBound(seed: UInt64) {
        var cluster = SimulatedCluster(nodes: 5, seed: seed)
        _ = cluster.run(until: 5000) { $0.everyone { $0.view.count == 5 } }
        cluster.stopped.insert("n4")
        let took = cluster.run(until: 10_000) { $0.everyone { $0.member("n4")?.status == .dead } }
        // The bound: deadAfter, plus a few gossip rounds for the last
        // heartbeat to have spread.
        let bound = cluster.config.deadAfterMs + 4 * cluster.config.heartbeatIntervalMs
        #expect(took != nil && took! <= bound, "seed \(seed): dead after \(took.map(String.init) ?? "never") ms, bound \(bound)")
    }

    @Test func aStoppedNodeIsSuspectBeforeItIsDead() {
        var cluster = SimulatedCluster(nodes: 3, seed: 7)
        _ = cluster.run(until: 5000) { $0.everyone { $0.view.count == 3 } }
        cluster.stopped.insert("n2")
        let suspectAt = cluster.run(until: 10_000) { $0.status(of: "n2", seenBy: "n0") == .suspect }
        #expect(suspectAt != nil)
        #expect(cluster.status(of: "n2", seenBy: "n0") == .suspect)
        let deadAt = cluster.run(until: 10_000) { $0.status(of: "n2", seenBy: "n0") == .dead }
        #expect(deadAt != nil)
    }

    @Test(arguments: 0..<10)
    func delaysWithinTheBoundRaiseNoSuspicion(seed: UInt64) {
        // Every message is late by up to 300 ms. Round-robin gossip reaches
        // each of 4 peers every 2 ticks (400 ms), so heartbeats are at most
        // 700 ms apart, under the 750 ms suspicion bound.
        var cluster = SimulatedCluster(nodes: 5, seed: seed, maxDelayMs: 300)
        _ = cluster.run(until: 10_000) { $0.everyone { $0.view.count == 5 } }
        for _ in 0..<200 {
            cluster.step()
            let ok = cluster.everyone { $0.view.allSatisfy { $0.status == .alive } }
            if !ok {
                let bad = cluster.cores.values.flatMap { core in core.view.filter { $0.status != .alive }.map { "\(core.selfID) sees \($0.id) \($0.status) hb \($0.heartbeat) vs own \(cluster.cores[$0.id]!.me.heartbeat)" } }
                Issue.record("seed \(seed): false suspicion at \(cluster.nowMs) ms: \(bad)")
                break
            }
        }
    }

    @Test func aRestartedNodeIsAliveAgainEverywhere() {
        var cluster = SimulatedCluster(nodes: 4, seed: 3)
        _ = cluster.run(until: 5000) { $0.everyone { $0.view.count == 4 } }
        cluster.stopped.insert("n3")
        _ = cluster.run(until: 10_000) { $0.everyone { $0.member("n3")?.status == .dead } }
        cluster.start("n3", incarnation: 2)
        let took = cluster.run(until: 5000) { cluster in
            cluster.everyone { $0.member("n3")?.status == .alive && $0.member("n3")?.incarnation == 2 }
        }
        #expect(took != nil, "the new incarnation outranks the old death")
    }

    @Test func aLeavingNodeIsSeenAsLeftNotDead() {
        var cluster = SimulatedCluster(nodes: 4, seed: 5)
        _ = cluster.run(until: 5000) { $0.everyone { $0.view.count == 4 } }
        for directive in cluster.cores["n1"]!.leave() {
            if case .sendGossip(let to, let digest) = directive { cluster.send(digest, from: "n1", to: to) }
        }
        cluster.stopped.insert("n1")
        let took = cluster.run(until: 2000) { $0.everyone { $0.member("n1")?.status == .left } }
        #expect(took != nil)
        for _ in 0..<30 { cluster.step() }
        #expect(cluster.everyone { $0.member("n1")?.status == .left }, "left is final, never turned into dead")
    }

    /// A recovery after a restored disk waits for a member that left while
    /// it is still heard from (`ClusterMembership.departedAndStopped`): a
    /// leaving member cut off from the recovering node alone is still
    /// heard there, through the others' gossip.
    @Test func aLeavingMemberCutOffFromOneNodeIsStillHeardThereThroughTheOthers() {
        var cluster = SimulatedCluster(nodes: 3, seed: 11)
        _ = cluster.run(until: 5000) { $0.everyone { $0.view.count == 3 } }
        cluster.cut = ["n2>\(SimulatedCluster.peer("n0"))", "n0>\(SimulatedCluster.peer("n2"))"]
        let window = cluster.config.deadAfterMs
        let start = cluster.nowMs
        while cluster.nowMs - start < 3 * window {
            // It hands over: each round it beats once more (`leave`).
            for directive in cluster.cores["n2"]!.leave() {
                if case .sendGossip(let to, let digest) = directive { cluster.send(digest, from: "n2", to: to) }
            }
            cluster.step()
            if cluster.nowMs - start >= window {
                #expect(cluster.cores["n0"]!.member("n2")?.status == .left)
                #expect(cluster.cores["n0"]!.heardFrom("n2", withinMs: window, nowMs: cluster.nowMs), "at \(cluster.nowMs - start) ms")
            }
        }
        // Cut off from every other member, it falls silent everywhere.
        cluster.cut.insert("n2>\(SimulatedCluster.peer("n1"))")
        for _ in 0..<Int(2 * window / cluster.config.heartbeatIntervalMs) {
            for directive in cluster.cores["n2"]!.leave() {
                if case .sendGossip(let to, let digest) = directive { cluster.send(digest, from: "n2", to: to) }
            }
            cluster.step()
        }
        #expect(!cluster.cores["n0"]!.heardFrom("n2", withinMs: window, nowMs: cluster.nowMs))
    }

    @Test func aNewIncarnationIsReportedEvenIfTheStatusStaysAlive() {
        var core = MembershipCore(selfMember: Member(id: "a", http: "", peer: "pa", incarnation: 1), config: MembershipConfig(), nowMs: 0)
        _ = core.receive(GossipDigest(members: [Member(id: "b", http: "h1", peer: "pb-old", incarnation: 1)]), nowMs: 0)
        let restarted = Member(id: "b", http: "h2", peer: "pb-new", incarnation: 2)
        let directives = core.receive(GossipDigest(members: [restarted]), nowMs: 10)
        #expect(directives == [.memberChanged(restarted, previous: .alive)], "routing must learn the new peer address")
        #expect(core.member("b")?.peer == "pb-new")
    }

    /// A node declared dead that is in fact running (a long pause, lost
    /// heartbeats) may still lead orders others now lead: the first sign of
    /// its life sends it the digest that makes it refute.
    @Test func aDeadMemberThatStillBeatsIsToldAtOnce() {
        var core = MembershipCore(selfMember: Member(id: "a", http: "", peer: "pa", incarnation: 1), config: MembershipConfig(), nowMs: 0)
        var b = Member(id: "b", http: "hb", peer: "pb", incarnation: 3)
        b.heartbeat = 5
        _ = core.receive(GossipDigest(members: [b]), nowMs: 0)
        var rumour = b
        rumour.status = .dead
        _ = core.receive(GossipDigest(members: [rumour]), nowMs: 10)
        #expect(core.member("b")?.status == .dead)

        // An old heartbeat tells nothing new; a fresh one from the same life does.
        #expect(core.receive(GossipDigest(members: [b]), nowMs: 20).isEmpty)
        var beating = b
        beating.heartbeat = 9
        let directives = core.receive(GossipDigest(members: [beating]), nowMs: 30)
        #expect(directives == [.sendGossip(to: "pb", core.digest)])
        #expect(core.member("b")?.status == .dead, "dead until it refutes with a new life")

        // Told, b refutes; its new life is alive here.
        var other = MembershipCore(selfMember: b, config: MembershipConfig(), nowMs: 0)
        _ = other.receive(core.digest, nowMs: 40)
        #expect(other.me.incarnation == 4)
        _ = core.receive(other.digest, nowMs: 50)
        #expect(core.member("b")?.status == .alive)
    }

    @Test func aPeersReportOfThisNodeAliveIsALeaseDatedByTheHeartbeatItSaw() {
        var config = MembershipConfig()
        config.seeds = []
        var a = MembershipCore(selfMember: Member(id: "a", http: "", peer: "pa", incarnation: 1), config: config, nowMs: 0)
        var random = SplitMix64(seed: 1)
        _ = a.tick(nowMs: 200, random: &random)  // heartbeat 1, sent at 200
        _ = a.tick(nowMs: 400, random: &random)  // heartbeat 2, sent at 400
        var seenByB = a.me
        seenByB.heartbeat = 1
        let b = Member(id: "b", http: "", peer: "pb", incarnation: 1)
        _ = a.receive(GossipDigest(members: [seenByB, b]), from: "b", nowMs: 900)
        // Heartbeat 1 went out at 200: b releases a no sooner than 200 + dead-after.
        #expect(a.leaseExpiries["b"] == 200 + config.deadAfterMs - config.heartbeatIntervalMs)
        // A digest from someone else about a is no lease from b.
        seenByB.heartbeat = 2
        _ = a.receive(GossipDigest(members: [seenByB]), from: "c", nowMs: 950)
        #expect(a.leaseExpiries["b"] == 200 + config.deadAfterMs - config.heartbeatIntervalMs)
        #expect(a.leaseExpiries["c"] == 400 + config.deadAfterMs - config.heartbeatIntervalMs)
        // b says a is dead: its lease ends (and a refutes, so none holds in the new life).
        var dead = a.me
        dead.status = .dead
        _ = a.receive(GossipDigest(members: [dead]), from: "b", nowMs: 1000)
        #expect(a.leaseExpiries.isEmpty)
        #expect(a.me.incarnation == 2)
    }

    @Test func aDeathHeardByGossipIsNotReleasedWhileTheMemberBeatRecentlyHere() {
        var c = MembershipCore(selfMember: Member(id: "c", http: "", peer: "pc", incarnation: 1), config: MembershipConfig(), nowMs: 0)
        var a = Member(id: "a", http: "", peer: "pa", incarnation: 1)
        a.heartbeat = 7
        _ = c.receive(GossipDigest(members: [a]), nowMs: 1000)
        a.status = .dead
        _ = c.receive(GossipDigest(members: [a]), nowMs: 1100)
        #expect(c.member("a")?.status == .dead)
        let dead = MembershipConfig().deadAfterMs
        #expect(!c.released(nowMs: 1100).contains("a"), "a beat here at 1000: its lease from c holds")
        #expect(!c.released(nowMs: 1000 + dead - 1).contains("a"))
        #expect(c.released(nowMs: 1000 + dead).contains("a"))
        var left = Member(id: "l", http: "", peer: "pl", status: .left, incarnation: 1)
        left.heartbeat = 1
        _ = c.receive(GossipDigest(members: [left]), nowMs: 1000 + dead)
        #expect(c.released(nowMs: 1000 + dead).contains("l"), "a member that left gave its orders up")
    }

    @Test func aNodeThatWasPausedDoesNotTakeItsOwnSilenceForItsPeers() {
        var a = MembershipCore(selfMember: Member(id: "a", http: "", peer: "pa", incarnation: 1), config: MembershipConfig(), nowMs: 0)
        var random = SplitMix64(seed: 2)
        var b = Member(id: "b", http: "", peer: "pb", incarnation: 1)
        b.heartbeat = 1
        _ = a.receive(GossipDigest(members: [b]), nowMs: 0)
        _ = a.tick(nowMs: 200, random: &random)
        // a stops for 5 s, then runs again: b is not dead for it...
        let directives = a.tick(nowMs: 5200, random: &random)
        #expect(a.member("b")?.status == .alive, "\(directives)")
        // ...until b stays silent for dead-after in a's running time.
        var now: Int64 = 5200
        while now < 5200 + MembershipConfig().deadAfterMs {
            now += 200
            _ = a.tick(nowMs: now, random: &random)
        }
        #expect(a.member("b")?.status == .dead)
    }

    /// The lease rule under delays and pauses: a node is never released by
    /// a peer whose lease to it still holds.
    @Test(arguments: 0..<20)
    func noNodeIsReleasedByAPeerWhoseLeaseToItHolds(seed: UInt64) {
        var cluster = SimulatedCluster(nodes: 4, seed: seed, maxDelayMs: 700)
        var pauses = SplitMix64(seed: seed &+ 99)
        var violations: [String] = []
        for _ in 0..<300 {
            // Now and then a node freezes for a while (SIGSTOP, a long GC-like
            // pause) and resumes; messages to it meanwhile are lost.
            if pauses.next() % 20 == 0, let victim = cluster.cores.keys.sorted().randomElement(using: &pauses) {
                if cluster.stopped.contains(victim) { cluster.stopped.remove(victim) } else { cluster.stopped.insert(victim) }
            }
            cluster.step()
            violations += cluster.leaseViolations()
        }
        #expect(violations.isEmpty, "seed \(seed): \(violations.prefix(3))")
    }

    @Test func aNodeRefutesARumourOfItsDeath() {
        var core = MembershipCore(selfMember: Member(id: "a", http: "", peer: "pa", incarnation: 5), config: MembershipConfig(), nowMs: 0)
        var rumour = core.me
        rumour.status = .dead
        _ = core.receive(GossipDigest(members: [rumour]), nowMs: 10)
        #expect(core.me.status == .alive)
        #expect(core.me.incarnation == 6)
    }

    @Test func digestsRoundTripAndHostileBytesThrow() throws {
        let digest = GossipDigest(members: [
            Member(id: "api-1", http: "127.0.0.1:8081", peer: "127.0.0.1:7081", status: .suspect, incarnation: 1_700_000_000_000, heartbeat: 42),
            Member(id: "é", http: "", peer: "", status: .left, incarnation: 1),
        ])
        #expect(try GossipDigest.decode(digest.encoded()) == digest)
        let bytes = digest.encoded()
        for cut in 0..<bytes.count {
            #expect(throws: GossipDigest.DecodingError.self) { try GossipDigest.decode(Array(bytes.prefix(cut))) }
        }
        #expect(throws: GossipDigest.DecodingError.self) { try GossipDigest.decode([0xFF, 0xFF]) }
        #expect(throws: GossipDigest.DecodingError.self) { try GossipDigest.decode(bytes + [0]) }
    }
}

@Suite struct RememberedRingTests {
    /// A node restarted on its log starts from the ring it recorded: the
    /// members it has not heard from keep their place (dead, released only
    /// after `deadAfterMs`), those that left stay off it, and the first
    /// digest of a remembered member puts it back alive.
    @Test func aRestartedNodeStartsFromTheRingItRecorded() {
        let config = MembershipConfig()
        let me = Member(id: "n1", http: "h1", peer: "p1", incarnation: 5)
        var core = MembershipCore(selfMember: me, config: config, nowMs: 1_000)
        core.remember(["n1": false, "n2": false, "n3": true, "n4": false], nowMs: 1_000)
        #expect(core.view.map(\.id) == ["n1", "n2", "n3", "n4"])
        #expect(core.member("n2")?.status == .dead)
        #expect(core.member("n3")?.status == .left)
        #expect(core.member("n1")?.status == .alive, "its own record is this life's")
        #expect(core.released(nowMs: 1_000 + config.deadAfterMs - 1) == ["n3"], "only the one that left, until its lease could have run out")
        #expect(core.released(nowMs: 1_000 + config.deadAfterMs) == ["n2", "n3", "n4"])
        let n2 = Member(id: "n2", http: "h2", peer: "p2", incarnation: 3, heartbeat: 7)
        _ = core.receive(GossipDigest(members: [n2]), from: "n2", nowMs: 1_200)
        #expect(core.member("n2")?.status == .alive)
        #expect(core.member("n2")?.peer == "p2")
    }
}
