import HashRing
import Membership
import Replication
import Testing

/// Who leads an order in one node's view, and when a node counts as
/// settled: the pure decisions the membership shell asks for every command.
@Suite struct LeadershipTests {
    static let nodes = ["api-1", "api-2", "api-3"]

    /// A view from `selfID` on a three-node ring, every peer alive and
    /// every lease holding until 10 s, unless told otherwise.
    func view(
        _ selfID: String, mode: PartitionMode = .consistent, status: [String: MemberStatus] = [:], released: Set<String> = [],
        selfMayLead: Bool = true, blocked: Set<String> = [], leases: [String: Int64]? = nil, joined: Bool = true
    ) -> LeadershipView {
        var members: [String: Member] = [:]
        for id in Self.nodes {
            members[id] = Member(id: id, http: "h-\(id)", peer: "p-\(id)", status: status[id] ?? .alive, incarnation: 1)
        }
        let peers = Self.nodes.filter { $0 != selfID }
        return LeadershipView(
            selfID: selfID, mode: mode, replicationFactor: 3, ring: HashRing(nodes: Dictionary(uniqueKeysWithValues: Self.nodes.map { ($0, 1) })),
            ringNodes: Self.nodes, members: members, released: released, joined: joined, selfMayLead: selfMayLead, blocked: blocked,
            leases: leases ?? Dictionary(uniqueKeysWithValues: peers.map { ($0, 10_000) }), deadAfterMs: 1500)
    }

    /// An order whose preference list starts with `first`.
    func order(ledBy first: String) -> String {
        let ring = view(first).ring
        return (0..<10_000).lazy.map { "o-\($0)" }.first { ring.preferenceList(for: $0, count: 3).first == first }!
    }

    @Test func theFirstReplicaLeadsAndTheOthersForwardToIt() {
        let order = order(ledBy: "api-1")
        #expect(view("api-1").route(order, nowMs: 5_000) == .local)
        #expect(view("api-2").route(order, nowMs: 5_000) == .remote(nodeID: "api-1", peer: "p-api-1"))
    }

    @Test func aLeaderWithoutEnoughLeasesDecidesNothingInConsistentMode() {
        let order = order(ledBy: "api-1")
        // Leases run out at 10 s: past that no replica vouches for it.
        guard case .unavailable(let reason) = view("api-1").route(order, nowMs: 10_001) else {
            Issue.record("a leader whose leases ran out must not decide")
            return
        }
        #expect(reason.contains("confirmed"))
        // One lease is enough with three replicas (it meets every majority).
        #expect(view("api-1", leases: ["api-2": 20_000]).route(order, nowMs: 10_001) == .local)
        // Available mode does not ask for leases.
        #expect(view("api-1", mode: .available, leases: [:]).route(order, nowMs: 10_001) == .local)
    }

    @Test func aDeadLeaderKeepsItsOrdersUntilReleasedInConsistentMode() {
        let order = order(ledBy: "api-1")
        let second = view("api-2").preferenceList(order)[1]
        let dead = view(second, status: ["api-1": .dead])
        #expect(dead.route(order, nowMs: 5_000) == .remote(nodeID: "api-1", peer: "p-api-1"), "dead but not released: it may still decide")
        let released = view(second, status: ["api-1": .dead], released: ["api-1"])
        #expect(released.route(order, nowMs: 5_000) == .local)
        // In available mode a dead member leads nothing at once.
        #expect(view(second, mode: .available, status: ["api-1": .dead]).route(order, nowMs: 5_000) == .local)
    }

    @Test func aLeaderCutOffByThePartitionSwitchIsNotForwardedTo() {
        let order = order(ledBy: "api-1")
        guard case .unavailable(let reason) = view("api-2", blocked: ["api-1"]).route(order, nowMs: 5_000) else {
            Issue.record("a leader cut off here is not reachable")
            return
        }
        #expect(reason.contains("cut off"))
        guard case .unavailable(let minority) = view("api-2", blocked: ["api-1", "api-3"]).route(order, nowMs: 5_000) else {
            Issue.record("a side without a majority refuses")
            return
        }
        #expect(minority.contains("majority"))
    }

    @Test func aNodeThatMayNotLeadYetLeavesItsOrdersToTheNextReplica() {
        let order = order(ledBy: "api-1")
        let unsettled = view("api-1", selfMayLead: false)
        #expect(!unsettled.mayLead("api-1"))
        #expect(unsettled.placement(order).leader == unsettled.preferenceList(order)[1])
        #expect(view("api-1", joined: false).route(order, nowMs: 0) == .unavailable("this node is still joining the cluster"))
    }

    @Test func aFollowerVouchesForTheNodesItLetsLead() {
        let vouch = view("api-2", status: ["api-1": .dead], released: ["api-1"]).vouchView
        #expect(vouch.ring == Self.nodes)
        #expect(vouch.eligible == ["api-2", "api-3"])
        #expect(view("api-2", status: ["api-3": .suspect]).reachablePeers == ["api-1": "p-api-1"], "only alive peers are reachable")
    }

    @Test func aNodeSettlesOnceEveryLivePeerHasSeenItInThisLife() {
        var tracker = SettleTracker()
        let me = Member(id: "api-1", http: "", peer: "", incarnation: 7)
        let live: Set<String> = ["api-2", "api-3"]
        #expect(tracker.settled(joined: true, incarnation: 7, livePeers: { live }, nowMs: 100, suspectAfterMs: 750) == (false, false))
        tracker.noteSeen(by: "api-2", as: me, incarnation: 7)
        #expect(tracker.settled(joined: true, incarnation: 7, livePeers: { live }, nowMs: 100, suspectAfterMs: 750).settled == false)
        // A report of an older life does not count.
        tracker.noteSeen(by: "api-3", as: Member(id: "api-1", http: "", peer: "", incarnation: 6), incarnation: 7)
        #expect(tracker.settled(joined: true, incarnation: 7, livePeers: { live }, nowMs: 100, suspectAfterMs: 750).settled == false)
        tracker.noteSeen(by: "api-3", as: me, incarnation: 7)
        #expect(tracker.settled(joined: true, incarnation: 7, livePeers: { live }, nowMs: 100, suspectAfterMs: 750) == (true, true))
        #expect(tracker.settled(joined: true, incarnation: 7, livePeers: { live }, nowMs: 100, suspectAfterMs: 750) == (true, false))
        // A new life (a refutation) starts over.
        #expect(tracker.settled(joined: true, incarnation: 8, livePeers: { live }, nowMs: 100, suspectAfterMs: 750).settled == false)
        #expect(tracker.settled(joined: false, incarnation: 7, livePeers: { [] }, nowMs: 100, suspectAfterMs: 750).settled == false)
    }

    @Test func aNodeThatWasFrozenLeadsNothingUntilSeenAgain() {
        var tracker = SettleTracker()
        let me = Member(id: "api-1", http: "", peer: "", incarnation: 7)
        #expect(tracker.tick(nowMs: 1_000, suspectAfterMs: 750) == nil)
        tracker.noteSeen(by: "api-2", as: me, incarnation: 7)
        #expect(tracker.settled(joined: true, incarnation: 7, livePeers: { ["api-2"] }, nowMs: 1_100, suspectAfterMs: 750).settled)
        // No tick for a while: what queued meanwhile must not run as leader.
        #expect(tracker.settled(joined: true, incarnation: 7, livePeers: { ["api-2"] }, nowMs: 2_000, suspectAfterMs: 750).settled == false)
        #expect(tracker.tick(nowMs: 3_000, suspectAfterMs: 750) == 2_000)
        #expect(tracker.settled(joined: true, incarnation: 7, livePeers: { ["api-2"] }, nowMs: 3_000, suspectAfterMs: 750).settled == false)
        tracker.noteSeen(by: "api-2", as: me, incarnation: 7)
        #expect(tracker.settled(joined: true, incarnation: 7, livePeers: { ["api-2"] }, nowMs: 3_000, suspectAfterMs: 750) == (true, true))
    }
}
