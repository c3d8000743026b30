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
        let order = FetchRequest(correlationID: 8, follower: "api-2", scope: .order(ClientID("o-1")!))
        #expect(try ReplicationCodec.decodeRequest(ReplicationCodec.encode(order)) == order)
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
        var payload = ReplicationCodec.encode(FetchRequest(correlationID: 1, follower: "f", scope: .order(ClientID("o")!))).payload
        // The last byte is the view flag (0: none).
        payload.setInteger(UInt8(7), at: payload.writerIndex - 1)
        #expect(throws: WireError.self) { try ReplicationCodec.decodeRequest(Frame(type: ReplicationFrame.fetch.rawValue, payload: payload)) }
    }
}
