import LogStorage
import OrderDomain
import Replication
import Testing

/// The decisions of log shipping, holder and follower side.
@Suite struct LogShippingTests {
    func event(_ origin: String, _ offset: Int64, payloadBytes: Int = 10) -> EventRecord {
        EventRecord(
            origin: origin, offset: offset, orderID: "o-\(offset)", version: 1, type: "OrderPlaced",
            payload: String(repeating: "x", count: payloadBytes), eventID: EventID.make(origin: origin, logID: "ab", offset: offset), recordedAt: 1)
    }

    @Test func aFollowerAheadOfTheOriginsLogIsRefusedLoudly() {
        #expect(FetchServing.ownLogRefusal(follower: "api-2", origin: "api-1", fromOffset: 11, committed: 10) == nil)
        let refusal = FetchServing.ownLogRefusal(follower: "api-2", origin: "api-1", fromOffset: 15, committed: 10)
        #expect(refusal?.contains("ends at 10") == true)
    }

    @Test func onlyCommittedOwnEventsShipAndABatchStopsAtItsByteLimit() {
        let scanned = (1...5).map { event("api-1", $0) }
        #expect(FetchServing.ownBatch(scanned, limit: 100, committed: 3).events.map(\.offset) == [1, 2, 3])
        #expect(FetchServing.ownBatch(scanned, limit: 100, committed: 3).complete, "the scan went past what is committed")
        #expect(!FetchServing.ownBatch(Array(scanned.prefix(3)), limit: 3, committed: 5).complete, "a full scan: more may follow")
        let big = (1...4).map { event("api-1", $0, payloadBytes: FetchServing.batchBytesMax / 3) }
        #expect(FetchServing.capped(big).count == 2)
        let huge = [event("api-1", 1, payloadBytes: FetchServing.batchBytesMax * 2)]
        #expect(FetchServing.capped(huge).count == 1, "one event always goes, however large")
        #expect(FetchServing.ownReply([], complete: true, fromOffset: 8, committed: 7) == (through: 7, holderLast: 7))
    }

    @Test func aLogPutBackWithGapsBringsTheFollowerPastThem() {
        // Own events put back from peers' copies at offsets 2 and 5; the lost
        // log went to 9 (the floor), so the committed end is 9.
        let scanned = [event("api-1", 2), event("api-1", 5)]
        let (batch, complete) = FetchServing.ownBatch(scanned, limit: 100, committed: 9)
        #expect(complete)
        #expect(FetchServing.ownReply(batch, complete: complete, fromOffset: 1, committed: 9) == (through: 9, holderLast: 9))
        #expect(FetchServing.ownReply([], complete: true, fromOffset: 6, committed: 9) == (through: 9, holderLast: 9), "nothing past 5: to the end")
        let cut = FetchServing.ownBatch(scanned, limit: 2, committed: 9)
        #expect(!cut.complete)
        #expect(FetchServing.ownReply(cut.events, complete: cut.complete, fromOffset: 1, committed: 9) == (through: 5, holderLast: 9))
    }

    @Test func aNotFullBatchOfCopiesBringsTheFollowerToTheHoldersPosition() {
        // The holder keeps only some orders: offsets 3 and 9 of a log it has
        // copied through 20.
        let batch = [event("api-3", 3), event("api-3", 9)]
        #expect(FetchServing.copyReply(batch, scanned: 2, limit: 100, fromOffset: 1, position: 20) == (through: 20, holderLast: 20))
        #expect(FetchServing.copyReply(batch, scanned: 2, limit: 2, fromOffset: 1, position: 20) == (through: 9, holderLast: 20), "a full batch: more may follow")
        #expect(FetchServing.copyReply([], scanned: 0, limit: 100, fromOffset: 31, position: 20) == (through: 30, holderLast: 20))
    }

    /// Large events (orders with many lines) fill a batch's bytes before its
    /// count: the reply must not say the follower holds the rest. (Before, it
    /// reported the holder's whole position, and backfill and the stats and
    /// warehouse tails skipped the events that did not fit, for good.)
    @Test func aBatchOfCopiesCutByItsByteLimitBringsTheFollowerOnlyToItsLastEvent() {
        let scanned = (1...4).map { event("api-3", $0 * 2, payloadBytes: FetchServing.batchBytesMax / 3) }
        let batch = FetchServing.capped(scanned)
        #expect(batch.count == 2)
        #expect(FetchServing.copyReply(batch, scanned: scanned.count, limit: 100, fromOffset: 1, position: 20) == (through: 4, holderLast: 20))
    }

    @Test func aFollowerStoresOnlyEventsOfTheLogItAskedForPastItsPosition() {
        let good = [event("api-1", 11), event("api-1", 12)]
        #expect(FollowerState.verdict(origin: "api-1", position: 10, events: good, throughOffset: 12) == .store(through: 12))
        #expect(FollowerState.verdict(origin: "api-1", position: 12, events: [], throughOffset: 12) == .unchanged)
        guard case .reject = FollowerState.verdict(origin: "api-1", position: 11, events: good, throughOffset: 12) else {
            Issue.record("an event at or before the position is refused")
            return
        }
        guard case .reject = FollowerState.verdict(origin: "api-2", position: 10, events: good, throughOffset: 12) else {
            Issue.record("events of another log are refused")
            return
        }
    }

    /// The origin checks that the follower's copy holds, where it stands,
    /// the very event its own log holds there: same id and same checksum.
    /// A log restored from a backup keeps its log id, so an event written
    /// again at an offset has the id of the one it replaced.
    @Test func aFollowerWhoseCopyHoldsAnotherEventAtItsPositionIsRefused() {
        let here = event("api-1", 41)
        #expect(FetchServing.identityRefusal(follower: "api-2", origin: "api-1", offset: 41, followerSaw: here.eventID, checksum: here.checksum, here: here) == nil)
        var rewritten = here
        rewritten.payload = #"{"other":true}"#
        rewritten.checksum = rewritten.computedChecksum
        let sameID = FetchServing.identityRefusal(
            follower: "api-2", origin: "api-1", offset: 41, followerSaw: here.eventID, checksum: here.checksum, here: rewritten)
        #expect(sameID?.contains("went back") == true, "\(String(describing: sameID))")
        #expect(FetchServing.identityRefusal(follower: "api-2", origin: "api-1", offset: 41, followerSaw: "api-1-0ther-000000000041", checksum: 1, here: here) != nil)
        #expect(FetchServing.identityRefusal(follower: "api-2", origin: "api-1", offset: 41, followerSaw: here.eventID, checksum: here.checksum, here: nil) != nil)
    }

    /// A follower keeps only its own orders, so the event where it stands
    /// may be one it passed. A log put back from the peers' copies after a
    /// replaced disk skips the offsets of events no peer kept: no event
    /// there is no disagreement with a follower that only passed one (the
    /// simulator's seed 6045 on a release build: that follower was refused
    /// for good and never copied the new log). Another event there still is.
    @Test func aHoleWhereTheFollowerOnlyPassedAnEventIsNoDisagreementButAnotherEventIs() {
        let passed = event("api-1", 49)
        #expect(FetchServing.identityRefusal(
            follower: "api-4", origin: "api-1", offset: 49, followerSaw: passed.eventID, checksum: passed.checksum, held: false, here: nil) == nil)
        #expect(FetchServing.identityRefusal(
            follower: "api-4", origin: "api-1", offset: 49, followerSaw: passed.eventID, checksum: passed.checksum, held: false, here: passed) == nil)
        var other = event("api-1", 49)
        other.eventID = "api-1-0ther-000000000049"
        let refusal = FetchServing.identityRefusal(
            follower: "api-4", origin: "api-1", offset: 49, followerSaw: passed.eventID, checksum: passed.checksum, held: false, here: other)
        #expect(refusal?.contains("api-4 passed \(passed.eventID)") == true, "\(String(describing: refusal))")
        var rewritten = passed
        rewritten.payload = #"{"other":true}"#
        rewritten.checksum = rewritten.computedChecksum
        #expect(FetchServing.identityRefusal(
            follower: "api-4", origin: "api-1", offset: 49, followerSaw: passed.eventID, checksum: passed.checksum, held: false, here: rewritten) != nil)
    }

    @Test func aNewLeaderNeedsAnswersThatMeetEveryMajority() {
        #expect(GatherRule.repliesNeeded(replicas: 3) == 2)
        #expect(GatherRule.repliesNeeded(replicas: 5) == 3)
        #expect(GatherRule.repliesNeeded(replicas: 1) == 1)
        // An even list, one member fewer than the list before it: every
        // write a majority of the old list acknowledged without this node
        // is on the others only (seed 92443: a list of two after a leave).
        #expect(GatherRule.repliesNeeded(replicas: 2) == 2)
        #expect(GatherRule.repliesNeeded(replicas: 4) == 3)
        for count in 1...9 {
            let needed = GatherRule.repliesNeeded(replicas: count)
            // The smallest set that can hold an acknowledged write: a
            // majority of this list, or of the list with one more member
            // less that member.
            let smallest = min(count / 2 + 1, (count + 1) / 2 + 1 - 1)
            #expect(needed + smallest > count, "\(count) replicas: \(needed) answers may miss a write held by \(smallest)")
            #expect(needed - 1 + smallest <= count, "\(count) replicas: \(needed) answers is more than needed")
        }
    }

    /// Seed 92443's shape: a list of two left by the third member; the other
    /// replica granted the term holding more of its own log than this node
    /// copied. This node may not decide alone that an order is absent.
    @Test func aTermOfAListOfTwoCoversNothingUntilTheCopiesReachTheOtherReplica() {
        let term = Term(number: 102, leader: "api-1")
        var positions: [String: Int64] = ["api-2": 89, "api-3": 126]
        var frontier = TermFrontier(
            term: term, held: ["api-2": ["api-1": 123, "api-2": 318, "api-3": 336]], own: "api-1", positions: positions)
        #expect(!frontier.covers(replicas: 2) { positions[$0] })
        positions["api-2"] = 318
        positions["api-3"] = 336
        #expect(frontier.covers(replicas: 2) { positions[$0] })
    }

    @Test func backfillReadsALogThroughTheEndItFirstSaw() {
        #expect(BackfillProgress.next(position: 0, throughOffset: 100, lastEventOffset: 90, eventCount: 50, target: 500) == 100)
        #expect(BackfillProgress.next(position: 100, throughOffset: 500, lastEventOffset: 480, eventCount: 50, target: 500) == nil)
        #expect(BackfillProgress.next(position: 100, throughOffset: 100, lastEventOffset: nil, eventCount: 0, target: 500) == nil)
    }

    /// A leader decides on an order nobody held without a gather only once
    /// its copies reach what enough granting replicas held: with RF 3 one
    /// replica besides itself, with RF 5 two.
    @Test func aTermCoversAnOrderNobodyHeldOnlyOnceTheCopiesReachWhatEnoughReplicasHeld() {
        let term = Term(number: 4, leader: "api-1")
        var positions: [String: Int64] = ["api-2": 10, "api-3": 5]
        var frontier = TermFrontier(
            term: term,
            held: ["api-2": ["api-1": 99, "api-2": 12, "api-3": 5], "api-3": ["api-2": 10, "api-3": 9]],
            own: "api-1", positions: positions)
        // Its own log's offsets are no condition: it holds its own events.
        #expect(frontier.pending["api-2"] == ["api-2": 12])
        #expect(frontier.pending["api-3"] == ["api-3": 9])
        #expect(!frontier.covers(replicas: 3) { positions[$0] })
        #expect(!frontier.covers(replicas: 3) { _ in nil }, "a log not copied at all reaches nothing")
        positions["api-3"] = 9
        #expect(frontier.covers(replicas: 3) { positions[$0] }, "api-3 caught up: it and this node meet every majority of 3")
        #expect(frontier.caughtUp == ["api-3"])
        // RF 5 needs a second replica caught up.
        #expect(!frontier.covers(replicas: 5) { positions[$0] })
        positions["api-2"] = 12
        #expect(frontier.covers(replicas: 5) { positions[$0] })
        // A replica that granted without offsets (an older release) never counts.
        var silent = TermFrontier(term: term, held: [:], own: "api-1", positions: positions)
        #expect(!silent.covers(replicas: 3) { positions[$0] })
        #expect(silent.covers(replicas: 1) { positions[$0] }, "with RF 1 the leader alone is every majority")
    }
}
