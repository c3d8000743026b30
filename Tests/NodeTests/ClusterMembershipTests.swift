import Logging
import Membership
import Testing
import Wire

@testable import Node

/// The membership shell under digests that arrive on several threads at
/// once, as they do from several peers' connections.
@Suite struct ClusterMembershipTests {
    static func membership() -> ClusterMembership {
        // 400 rounds of four members each: "member alive" at info would be
        // 1,600 lines of the test run's output.
        var logger = Logger(label: "t")
        logger.logLevel = .warning
        return ClusterMembership(
            self: Member(id: "api-0", http: "", peer: "p0", incarnation: 1), config: MembershipConfig(), replicationFactor: 3,
            network: PeerClients(security: HandshakeConfig(cluster: "t", nodeID: "api-0", secret: nil), logger: logger),
            environment: .system(), logger: logger)
    }

    /// Each digest brings a new member. Routing (the ring orders are placed
    /// on, the peers followed) must end up with all of them: a snapshot
    /// built from an older view must never replace a newer one. Before the
    /// fix, 2 of 3 runs of these 400 rounds lost a member.
    @Test func concurrentDigestsLeaveNoMemberOffTheRing() async {
        var lost: [String] = []
        for round in 0..<400 {
            let membership = Self.membership()
            let peers = (1...4).map { "api-\($0)" }
            await withTaskGroup(of: Void.self) { group in
                for peer in peers {
                    group.addTask {
                        let member = Member(id: peer, http: "h-\(peer)", peer: "p-\(peer)", incarnation: 1, heartbeat: 1)
                        membership.receive(GossipDigest(members: [member]), from: peer)
                    }
                }
            }
            let ring = membership.ringMembers
            if ring != Set(["api-0"] + peers) { lost.append("round \(round): ring \(ring.sorted())") }
            if Set(membership.reachablePeers().keys) != Set(peers) { lost.append("round \(round): reachable \(membership.reachablePeers().keys.sorted())") }
        }
        #expect(lost.isEmpty, "\(lost.prefix(3))")
    }
}
