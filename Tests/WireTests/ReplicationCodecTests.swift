import LogStorage
import NIOCore
import OrderDomain
import Replication
import Testing
import Wire

/// The fetch request and the follower's view on the wire: what goes out
/// comes back, and hostile bytes are refused, never trusted.
@Suite struct ReplicationCodecTests {
    let view = VouchView(ring: ["api-1", "api-2", "api-3"], eligible: ["api-2", "api-3"])

    @Test func aFetchCarriesTheFollowersViewAndAnOrderFetchNone() throws {
        let log = FetchRequest(
            correlationID: 7, follower: "api-2", scope: .log(origin: "api-1", fromOffset: 42, eventsMax: 100, waitMs: 500), view: view)
        #expect(try ReplicationCodec.decodeRequest(ReplicationCodec.encode(log)) == log)
        let checked = FetchRequest(
            correlationID: 9, follower: "api-2",
            scope: .log(
                origin: "api-1", fromOffset: 42, eventsMax: 100, waitMs: 0, previousEventID: "api-1-ab12-000000000041", previousChecksum: 0xDEAD_BEEF),
            view: VouchView(ring: view.ring, eligible: view.eligible, promises: ["api-1,api-2,api-3": Term(number: 4, leader: "api-1")], sequence: 3))
        #expect(try ReplicationCodec.decodeRequest(ReplicationCodec.encode(checked)) == checked)
        let passed = FetchRequest(
            correlationID: 10, follower: "api-4",
            scope: .log(
                origin: "api-1", fromOffset: 50, eventsMax: 100, waitMs: 0, previousEventID: "api-1-ab12-000000000049", previousChecksum: 7,
                previousHeld: false))
        #expect(try ReplicationCodec.decodeRequest(ReplicationCodec.encode(passed)) == passed)
        var badFlag = ReplicationCodec.encode(passed)
        let flagAt = badFlag.payload.writerIndex - 2  // the held flag, then the view flag
        badFlag.payload.setInteger(UInt8(7), at: flagAt)
        #expect(throws: WireError.self) { try ReplicationCodec.decodeRequest(badFlag) }
        let order = FetchRequest(correlationID: 8, follower: "api-2", scope: .orders([ClientID("o-1")!]))
        #expect(try ReplicationCodec.decodeRequest(ReplicationCodec.encode(order)) == order)
        let orders = FetchRequest(correlationID: 8, follower: "api-2", scope: .orders(["o-1", "o-2", "o-3"].map { ClientID($0)! }))
        #expect(try ReplicationCodec.decodeRequest(ReplicationCodec.encode(orders)) == orders)
    }

    /// A gathering fetch names 1 to `ordersPerGatherMax` orders; its answer
    /// carries a promise (or none) per order, in their order.
    @Test func aGatheringFetchOfSeveralOrdersAndItsPromisesRoundTripAndHostileCountsAreRefused() throws {
        let term = Term(number: 3, leader: "api-1")
        let event = EventRecord(
            origin: "api-1", offset: 4, orderID: "o-2", version: 1, type: "OrderPlaced", payload: #"{"v":1}"#, eventID: "api-1-ab-4",
            recordedAt: 1, term: 3, checksum: 7)
        let reply = FetchReply(events: [event], throughOffset: 0, holderLastOffset: 0, refusal: nil, promises: [term, nil, term])
        let decoded = try ReplicationCodec.decodeReply(ReplicationCodec.encode(reply, correlationID: 5))
        #expect(decoded == reply)

        for count in [0, ReplicationCodec.ordersPerGatherMax + 1] {
            let ids = (0..<count).map { ClientID("o-\($0)")! }
            let frame = ReplicationCodec.encode(FetchRequest(correlationID: 1, follower: "f", scope: .orders(ids)))
            #expect(throws: WireError.self, "\(count) orders") { try ReplicationCodec.decodeRequest(frame) }
        }
        let tooMany = FetchReply(
            events: [], throughOffset: 0, holderLastOffset: 0, refusal: nil, promises: Array(repeating: term, count: ReplicationCodec.ordersPerGatherMax + 1))
        #expect(throws: WireError.self) { try ReplicationCodec.decodeReply(ReplicationCodec.encode(tooMany, correlationID: 1)) }
    }

    @Test func aViewRoundTripsAndHostileViewsAreRefused() throws {
        let decoded = try ReplicationCodec.decodeVouch(ReplicationCodec.encodeVouch(follower: "api-3", view))
        #expect(decoded.follower == "api-3" && decoded.view == view)

        // A ring that is not sorted is not what any node sends.
        let unsorted = ReplicationCodec.encodeVouch(follower: "api-3", VouchView(ring: ["b", "a"], eligible: []))
        #expect(throws: WireError.self) { try ReplicationCodec.decodeVouch(unsorted) }

        // More nodes than a view may name.
        var huge = ByteBuffer()
        huge.writeLengthPrefixed("api-3")
        huge.writeInteger(UInt16(ReplicationCodec.viewNodesMax + 1))
        #expect(throws: WireError.self) { try ReplicationCodec.decodeVouch(Frame(type: ReplicationFrame.vouch.rawValue, payload: huge)) }

        // Cut short, or with bytes left over.
        var full = ReplicationCodec.encodeVouch(follower: "api-3", view).payload
        let short = full.getSlice(at: full.readerIndex, length: full.readableBytes - 1)!
        #expect(throws: WireError.self) { try ReplicationCodec.decodeVouch(Frame(type: ReplicationFrame.vouch.rawValue, payload: short)) }
        full.writeInteger(UInt8(0))
        #expect(throws: WireError.self) { try ReplicationCodec.decodeVouch(Frame(type: ReplicationFrame.vouch.rawValue, payload: full)) }
    }

    @Test func aFetchWithAnUnknownViewFlagIsRefused() throws {
        var payload = ReplicationCodec.encode(FetchRequest(correlationID: 1, follower: "f", scope: .orders([ClientID("o")!]))).payload
        // The last byte is the view flag (0: none).
        payload.setInteger(UInt8(7), at: payload.writerIndex - 1)
        #expect(throws: WireError.self) { try ReplicationCodec.decodeRequest(Frame(type: ReplicationFrame.fetch.rawValue, payload: payload)) }
    }

    @Test func grantsAndRecoveryAnswersRoundTripAndHostileOnesAreRefused() throws {
        let term = Term(number: 12, leader: "api-2")
        for request in [
            PeerRequest.grant(GrantRequest(group: "api-2,api-1,api-3", term: term)), .recovery(RecoveryRequest(node: "api-3")),
            .recovery(RecoveryRequest(node: "api-3", wantsRing: true)),
        ] {
            guard case .request(let id, let decoded)? = try PeerCodec.decode(PeerCodec.encode(request, correlationID: 41)) else {
                Issue.record("\(request) did not decode as a request")
                continue
            }
            #expect(id == 41 && decoded == request)
        }
        let replies: [PeerReply] = [
            .grant(GrantReply(granted: false, promise: term, reason: "it granted 12/api-2 already")),
            .recovery(RecoveryReply(
                promises: ["api-1,api-2,api-3": term], holdsAnything: true, recovering: false, knownNodes: ["api-1", "api-2", "api-4"],
                backfilled: true)),
            PeerRequest.recovery(RecoveryRequest(node: "api-3")).refused("this node is starting"),
            .recovery(RecoveryReply(promises: [:], holdsAnything: true, recovering: false, backfilled: true, heldRing: ["api-1", "api-3"])),
            .recovery(RecoveryReply(promises: [:], holdsAnything: true, recovering: false, heldRing: [])),
        ]
        for reply in replies {
            let frame = PeerCodec.encode(reply, correlationID: 42)
            #expect(PeerCodec.replyCorrelationID(frame) == 42)
            guard case .reply(let id, let decoded)? = try PeerCodec.decode(frame) else {
                Issue.record("\(reply) did not decode as a reply")
                continue
            }
            #expect(id == 42 && decoded == reply)
        }
        // Unknown flags, and bytes left over, are refused.
        var flags = RecoveryCodec.encode(RecoveryReply(promises: [:], holdsAnything: false, recovering: false), correlationID: 1).payload
        flags.setInteger(UInt8(9), at: flags.readerIndex + 8 + 2)
        #expect(throws: WireError.self) { try RecoveryCodec.decodeReply(Frame(type: ReplicationFrame.recoveryReply.rawValue, payload: flags)) }
        // Protocol 10: without the ring flag a recovery request is byte for
        // byte what version 9 sends; another flag value, or a held ring
        // that names a node twice, is refused.
        let plainRecovery = RecoveryCodec.encode(RecoveryRequest(node: "api-3"), correlationID: 1).payload
        var badFlag = RecoveryCodec.encode(RecoveryRequest(node: "api-3", wantsRing: true), correlationID: 1).payload
        #expect(badFlag.readableBytes == plainRecovery.readableBytes + 1)
        badFlag.setInteger(UInt8(2), at: badFlag.writerIndex - 1)
        #expect(throws: WireError.self) { try RecoveryCodec.decodeRequest(Frame(type: ReplicationFrame.recovery.rawValue, payload: badFlag)) }
        let twice = RecoveryCodec.encode(
            RecoveryReply(promises: [:], holdsAnything: false, recovering: false, heldRing: ["api-1", "api-1"]), correlationID: 1)
        #expect(throws: WireError.self) { try RecoveryCodec.decodeReply(twice) }
        var extra = GrantCodec.encode(GrantRequest(group: "a,b", term: term), correlationID: 1).payload
        extra.writeInteger(UInt8(0))
        #expect(throws: WireError.self) { try GrantCodec.decodeRequest(Frame(type: ReplicationFrame.grant.rawValue, payload: extra)) }
    }

    /// Protocol 9: a new term's leader asks each replica how far it holds
    /// each log; the answer comes whole or not at all.
    @Test func aGrantAskingForHeldOffsetsRoundTripsAndBadOffsetsAreRefused() throws {
        let term = Term(number: 3, leader: "api-1")
        let request = PeerRequest.grant(GrantRequest(group: "api-1,api-2,api-3", term: term, wantsHeld: true))
        guard case .request(_, let decodedRequest)? = try PeerCodec.decode(PeerCodec.encode(request, correlationID: 5)) else {
            Issue.record("the grant request did not decode")
            return
        }
        #expect(decodedRequest == request)
        // Without the flag the frame is byte for byte what version 8 sends.
        let plain = GrantCodec.encode(GrantRequest(group: "a,b", term: term), correlationID: 1).payload
        let flagged = GrantCodec.encode(GrantRequest(group: "a,b", term: term, wantsHeld: true), correlationID: 1).payload
        #expect(flagged.readableBytes == plain.readableBytes + 1)

        let reply = PeerReply.grant(GrantReply(granted: true, promise: term, held: ["api-1": 40, "api-2": 7, "api-3": 0]))
        guard case .reply(_, let decodedReply)? = try PeerCodec.decode(PeerCodec.encode(reply, correlationID: 6)) else {
            Issue.record("the grant reply did not decode")
            return
        }
        #expect(decodedReply == reply)
        // Too many origins to send whole: none are sent, so the leader gathers.
        let many = Dictionary(uniqueKeysWithValues: (0...ReplicationCodec.heldOriginsMax).map { ("n-\($0)", Int64($0)) })
        let (_, tooMany) = try GrantCodec.decodeReply(GrantCodec.encode(GrantReply(granted: true, promise: term, held: many), correlationID: 7))
        #expect(tooMany.held == nil)

        func replyFrame(offsets: [(String, Int64)], count: UInt16? = nil) -> Frame {
            var payload = GrantCodec.encode(GrantReply(granted: true, promise: term), correlationID: 8).payload
            payload.writeInteger(count ?? UInt16(offsets.count))
            for (origin, offset) in offsets {
                payload.writeLengthPrefixed(Array(origin.utf8))
                payload.writeInteger(offset)
            }
            return Frame(type: ReplicationFrame.grantReply.rawValue, payload: payload)
        }
        #expect(try GrantCodec.decodeReply(replyFrame(offsets: [("api-1", 3)])).reply.held == ["api-1": 3])
        for (bad, why) in [
            (replyFrame(offsets: [("api-1", -1)]), "a negative offset"),
            (replyFrame(offsets: [("api-1", 3), ("api-1", 4)]), "an origin twice"),
            (replyFrame(offsets: [("api-1", 3)], count: 2), "fewer origins than counted"),
            (replyFrame(offsets: [], count: UInt16(ReplicationCodec.heldOriginsMax + 1)), "more origins than allowed"),
        ] {
            #expect(throws: WireError.self, "\(why)") { try GrantCodec.decodeReply(bad) }
        }
    }

    /// Strings and payloads are read where they lie in the frame: text of
    /// any script crosses whole; bytes that are not UTF-8, or that stop
    /// short, are refused.
    @Test func eventTextCrossesWholeAndBytesThatAreNotUTF8AreRefused() throws {
        let event = EventRecord(
            origin: "api-1", offset: 3, orderID: "commande-é-中-😀", version: 1, type: "OrderPlaced",
            payload: #"{"customer":"Zoë \"Z\" 中","lines":[]}"#, eventID: "api-1-abc-3", recordedAt: 1_700_000_000_000, term: 2,
            checksum: 42)
        let reply = FetchReply(events: [event], throughOffset: 3, holderLastOffset: 3, refusal: nil)
        let frame = ReplicationCodec.encode(reply, correlationID: 5)
        #expect(try ReplicationCodec.decodeReply(frame) == reply)

        let bytes = Array(frame.payload.readableBytesView)
        func corrupted(_ text: String, with replacement: UInt8) -> Frame {
            let needle = Array(text.utf8)
            let at = (0...(bytes.count - needle.count)).first { Array(bytes[$0..<($0 + needle.count)]) == needle }!
            var changed = bytes
            changed[at] = replacement
            return Frame(type: frame.type, payload: ByteBuffer(bytes: changed))
        }
        for (bad, why) in [
            (corrupted("commande", with: 0xFF), "an order id that is not UTF-8"),
            (corrupted("{\"customer", with: 0xC3), "a payload that is not UTF-8"),
            (Frame(type: frame.type, payload: ByteBuffer(bytes: bytes.dropLast(30))), "an event cut short"),
        ] {
            #expect(throws: WireError.self, "\(why)") { try ReplicationCodec.decodeReply(bad) }
        }
        // Read directly: a count that is negative or past the end is refused
        // (never a trap), and refused text is consumed as a byte string is.
        var reader = PayloadReader(ByteBuffer(bytes: [0xFF, 0xFF, 0x41]))
        #expect(throws: WireError.self) { try reader.text("text", count: -1) }
        #expect(throws: WireError.self) { try reader.text("text", count: 4) }
        #expect(throws: WireError.self) { try reader.text("text", count: 2) }
        #expect(try reader.text("text", count: 1) == "A")
    }

    @Test func storeRequestsCarryWholeEventsAndTheirAnswersRoundTrip() throws {
        let event = EventRecord(
            origin: "api-1", offset: 7, orderID: "o-9", version: 2, type: "PaymentReceived", payload: #"{"v":1,"payment_id":"p"}"#,
            eventID: "api-1-abc-7", recordedAt: 1_700_000_000_000, term: 4, checksum: 0xDEAD_BEEF)
        let request = PeerRequest.store(StoreRequest(events: [event]))
        guard case .request(let id, let decoded)? = try PeerCodec.decode(PeerCodec.encode(request, correlationID: 43)) else {
            Issue.record("a store request did not decode as a request")
            return
        }
        #expect(id == 43 && decoded == request, "every field, the checksum included, crosses")
        for reply in [PeerReply.store(StoreReply(stored: 1)), request.refused("its log failed")] {
            let frame = PeerCodec.encode(reply, correlationID: 44)
            #expect(PeerCodec.replyCorrelationID(frame) == 44)
            guard case .reply(44, let decoded)? = try PeerCodec.decode(frame) else {
                Issue.record("\(reply) did not decode as a reply")
                continue
            }
            #expect(decoded == reply)
        }
        var extra = StoreCodec.encode(StoreRequest(events: []), correlationID: 1).payload
        extra.writeInteger(UInt8(0))
        #expect(throws: WireError.self) { try StoreCodec.decodeRequest(Frame(type: ReplicationFrame.store.rawValue, payload: extra)) }
    }
}
