import Testing
@testable import Replication

@Suite struct AckRulesTests {
    let list = ["a", "b", "c"]

    @Test func quorumOfThreeNeedsOneFollowerOfTheReachable() {
        #expect(AckRules.requirement(policy: .quorum, mode: .consistent, preferenceList: list, leader: "a", reachable: ["b", "c"])
            == .followers(["b", "c"], needed: 1))
        #expect(AckRules.requirement(policy: .quorum, mode: .consistent, preferenceList: list, leader: "a", reachable: ["c"])
            == .followers(["c"], needed: 1))
    }

    @Test func consistentModeRefusesWithoutAMajorityAndSaysWhy() {
        let requirement = AckRules.requirement(policy: .quorum, mode: .consistent, preferenceList: list, leader: "a", reachable: [])
        guard case .refuse(let reason) = requirement else {
            Issue.record("expected a refusal, got \(requirement)")
            return
        }
        #expect(reason.contains("1 of the 3"))
        // Even `leader` acks refuse there: the other side may lead the order.
        #expect(AckRules.requirement(policy: .leader, mode: .consistent, preferenceList: list, leader: "a", reachable: []) != .followers([], needed: 0))
    }

    @Test func availableModeSettlesForTheReachableReplicas() {
        #expect(AckRules.requirement(policy: .quorum, mode: .available, preferenceList: list, leader: "a", reachable: [])
            == .followers([], needed: 0))
        #expect(AckRules.requirement(policy: .all, mode: .available, preferenceList: list, leader: "b", reachable: ["a"])
            == .followers(["a"], needed: 1))
    }

    @Test func allWaitsForEveryLiveReplicaAndLeaderForNone() {
        #expect(AckRules.requirement(policy: .all, mode: .consistent, preferenceList: list, leader: "a", reachable: ["b", "c", "x"])
            == .followers(["b", "c"], needed: 2))
        #expect(AckRules.requirement(policy: .leader, mode: .consistent, preferenceList: list, leader: "a", reachable: ["b"])
            == .followers([], needed: 0))
    }

    @Test func replicationFactorFiveNeedsTwoFollowers() {
        let five = ["a", "b", "c", "d", "e"]
        #expect(AckRules.requirement(policy: .quorum, mode: .consistent, preferenceList: five, leader: "a", reachable: ["b", "c", "d", "e"])
            == .followers(["b", "c", "d", "e"], needed: 2))
        #expect(AckRules.requirement(policy: .quorum, mode: .consistent, preferenceList: five, leader: "a", reachable: ["b", "c"])
            == .followers(["b", "c"], needed: 2))
        guard case .refuse = AckRules.requirement(policy: .quorum, mode: .consistent, preferenceList: five, leader: "a", reachable: ["b"]) else {
            Issue.record("two of five is no majority")
            return
        }
    }

    @Test func aSingleNodeClusterNeedsNoFollower() {
        #expect(AckRules.requirement(policy: .quorum, mode: .consistent, preferenceList: ["a"], leader: "a", reachable: [])
            == .followers([], needed: 0))
    }
}

@Suite struct AckTrackerTests {
    @Test func aReplyWaitsUntilEnoughFollowersHoldItsOffset() {
        var tracker = AckTracker()
        do { let result = tracker.add(token: 1, offset: 10, followers: ["b", "c"], needed: 1); #expect(!result) }
        do { let result = tracker.acknowledge(follower: "b", through: 9); #expect(result == []) }
        do { let result = tracker.acknowledge(follower: "c", through: 10); #expect(result == [1]) }
        #expect(tracker.waitingCount == 0)
    }

    @Test func onePositionReleasesEveryReplyBelowIt() {
        var tracker = AckTracker()
        for token in 1...5 { let result = tracker.add(token: UInt64(token), offset: Int64(token * 10), followers: ["b"], needed: 1); #expect(!result) }
        do { let result = tracker.acknowledge(follower: "b", through: 35); #expect(result == [1, 2, 3]) }
        do { let result = tracker.acknowledge(follower: "b", through: 50); #expect(result == [4, 5]) }
    }

    @Test func positionsNeverMoveBack() {
        var tracker = AckTracker()
        _ = tracker.acknowledge(follower: "b", through: 20)
        _ = tracker.acknowledge(follower: "b", through: 5)
        #expect(tracker.positions["b"] == 20)
        do { let result = tracker.add(token: 1, offset: 15, followers: ["b"], needed: 1); #expect(result) }
    }

    @Test func aFollowerOutsideTheReplySetReleasesNothing() {
        var tracker = AckTracker()
        do { let result = tracker.add(token: 1, offset: 3, followers: ["b"], needed: 1); #expect(!result) }
        do { let result = tracker.acknowledge(follower: "x", through: 100); #expect(result == []) }
        #expect(tracker.waitingCount == 1)
    }

    @Test func lostFollowerRelaxesAllButNeverQuorum() {
        var tracker = AckTracker()
        let allReleased = tracker.add(token: 1, offset: 3, followers: ["b", "c"], needed: 2)
        let quorumReleased = tracker.add(token: 2, offset: 3, followers: ["b", "c"], needed: 1)
        #expect(!allReleased && !quorumReleased)
        _ = tracker.acknowledge(follower: "b", through: 2)
        do { let result = tracker.followerLost("c", relaxAll: false); #expect(result == []) }
        do { let result = tracker.followerLost("c", relaxAll: true); #expect(result == []) }
        do { let result = tracker.acknowledge(follower: "b", through: 3); #expect(result == [1, 2]) }
    }

    @Test func cancelledRepliesAreForgotten() {
        var tracker = AckTracker()
        do { let result = tracker.add(token: 7, offset: 1, followers: ["b"], needed: 1); #expect(!result) }
        tracker.cancel(token: 7)
        do { let result = tracker.acknowledge(follower: "b", through: 1); #expect(result == []) }
        #expect(tracker.waitingCount == 0)
    }

    @Test func memoryIsBoundedByRepliesNotByLag() {
        var tracker = AckTracker()
        for token in 1...1000 { _ = tracker.add(token: UInt64(token), offset: Int64(token), followers: ["slow"], needed: 1) }
        for token in 1...1000 { tracker.cancel(token: UInt64(token)) }
        #expect(tracker.waitingCount == 0)
        #expect(tracker.positions.count == 0)
    }
}

@Suite struct LeaseAndVouchingTests {
    let list = ["a", "b", "c"]
    let ring = ["a", "b", "c"]

    @Test func aLeaderOfThreeNeedsOneReplicasLeaseAndOfFiveTwo() {
        #expect(AckRules.leasesNeeded(preferenceList: list, leader: "a") == 1)
        #expect(AckRules.leasesNeeded(preferenceList: ["a", "b", "c", "d", "e"], leader: "c") == 2)
        // Two replicas: a write needs both, so the other cannot write
        // without this leader's vouch; one replica: no one else.
        #expect(AckRules.leasesNeeded(preferenceList: ["a", "b"], leader: "a") == 0)
        #expect(AckRules.leasesNeeded(preferenceList: ["a"], leader: "a") == 0)
    }

    @Test func leasesCountOnlyReplicasOfTheOrderAndOnlyUntilTheyExpire() {
        let leases: [String: Int64] = ["b": 1000, "x": 5000]
        #expect(AckRules.leaseSuffices(preferenceList: list, leader: "a", leases: leases, nowMs: 999))
        #expect(!AckRules.leaseSuffices(preferenceList: list, leader: "a", leases: leases, nowMs: 1000), "expired at 1000")
        #expect(!AckRules.leaseSuffices(preferenceList: list, leader: "a", leases: ["x": 5000], nowMs: 0), "x holds no replica of the order")
        #expect(AckRules.leaseSuffices(preferenceList: ["a", "b"], leader: "a", leases: [:], nowMs: 0))
    }

    @Test func aFollowerVouchesOnlyForTheFirstNodeItLetsLead() {
        let fence = Fence(preferenceList: list, ring: ring, leader: "b")
        // a is released in this view: b leads.
        #expect(fence.isVouched(by: VouchView(ring: ring, eligible: ["b", "c"])))
        // a may still lead here (a suspect, or dead by gossip only): b is no leader.
        #expect(!fence.isVouched(by: VouchView(ring: ring, eligible: ["a", "b", "c"])))
        // Another ring places the order elsewhere: no vouch until rings agree.
        #expect(!fence.isVouched(by: VouchView(ring: ["a", "b", "c", "d"], eligible: ["b", "c"])))
        #expect(!fence.isVouched(by: nil), "a follower that never said what it sees vouches for nothing")
    }

    @Test func aCopyCountsOnceTheFollowersViewVouchesForIt() {
        var tracker = AckTracker()
        let fence = Fence(preferenceList: list, ring: ring, leader: "b")
        let releasedAtOnce = tracker.add(token: 1, offset: 10, followers: ["a", "c"], needed: 1, fence: fence)
        #expect(!releasedAtOnce)
        // c holds the write but still lets a lead: not acknowledged.
        let releasedByTheCopy = tracker.acknowledge(follower: "c", through: 10, view: VouchView(ring: ring, eligible: ["a", "b", "c"]))
        #expect(releasedByTheCopy.isEmpty)
        // c's view changes (a released there): the write it holds is vouched now.
        let releasedByTheView = tracker.noteView(follower: "c", VouchView(ring: ring, eligible: ["b", "c"]))
        #expect(releasedByTheView == [1])
    }

    @Test func twoNodesThatBothThinkTheyLeadAreNeverBothAcknowledgedByOneFollower() {
        var tracker1 = AckTracker()
        var tracker2 = AckTracker()
        let view = VouchView(ring: ring, eligible: ["a", "b", "c"])
        // a leads in c's view; b (which released a) thinks it leads too.
        let aReleasedAtOnce = tracker1.add(token: 1, offset: 5, followers: ["b", "c"], needed: 1, fence: Fence(preferenceList: list, ring: ring, leader: "a"))
        #expect(!aReleasedAtOnce)
        let bReleasedAtOnce = tracker2.add(token: 1, offset: 5, followers: ["a", "c"], needed: 1, fence: Fence(preferenceList: list, ring: ring, leader: "b"))
        #expect(!bReleasedAtOnce)
        let aReleased = tracker1.acknowledge(follower: "c", through: 5, view: view)
        #expect(aReleased == [1])
        let bReleased = tracker2.acknowledge(follower: "c", through: 5, view: view)
        #expect(bReleased.isEmpty)
    }

    @Test func withoutAFencePositionsAloneCount() {
        var tracker = AckTracker()
        let releasedAtOnce = tracker.add(token: 1, offset: 3, followers: ["b"], needed: 1)
        #expect(!releasedAtOnce)
        let released = tracker.acknowledge(follower: "b", through: 3, view: VouchView(ring: [], eligible: []))
        #expect(released == [1])
    }
}
