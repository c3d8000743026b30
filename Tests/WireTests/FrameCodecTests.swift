import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing

@testable import Wire

@Suite struct FrameCodecTests {
    func frame(_ type: UInt8, _ text: String) -> Frame {
        Frame(type: type, payload: ByteBuffer(string: text))
    }

    func bytes(_ frames: [Frame]) -> ByteBuffer {
        var buffer = ByteBuffer()
        for frame in frames { frame.write(to: &buffer) }
        return buffer
    }

    @Test func framesSurviveAnySplitOfTheByteStream() throws {
        let one = [frame(16, "hello")]
        let many = [frame(16, ""), frame(17, String(repeating: "x", count: 5000)), frame(255, "é😀")]
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: [(bytes(one), one), (bytes(many), many)],
            decoderFactory: { FrameDecoder() })
    }

    func decodeError(_ buffer: ByteBuffer) -> (any Error)? {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        defer { _ = try? channel.finish() }
        do {
            try channel.writeInbound(buffer)
            return nil
        } catch {
            return error
        }
    }

    @Test func anOversizedLengthFailsBeforeTheBodyArrives() {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(WireLimits.frameBytesMax))  // header only: nothing else sent
        #expect(decodeError(buffer) as? WireError == .frameTooLarge(bytes: WireLimits.frameBytesMax + 4))
    }

    @Test func aLengthShorterThanAHeaderIsRefused() {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(3))
        #expect(decodeError(buffer) as? WireError == .frameTooShort(bytes: 7))
    }

    @Test func aCorruptPayloadFailsItsChecksum() {
        var buffer = bytes([frame(16, "payload")])
        buffer.setInteger(UInt8(ascii: "P"), at: WireLimits.headerBytes)
        #expect(decodeError(buffer) as? WireError == .checksumMismatch)
    }

    @Test func wrongMagicAndWrongVersionAreRefused() {
        var magic = bytes([frame(16, "x")])
        magic.setInteger(UInt16(0x4854), at: 4)  // "HT", as an HTTP client would send
        #expect(decodeError(magic) as? WireError == .badMagic(0x4854))
        var version = bytes([frame(16, "x")])
        let unknown = WireLimits.protocolVersion + 1
        version.setInteger(unknown, at: 6)
        #expect(decodeError(version) as? WireError == .unsupportedVersion(unknown))
    }

    @Test func aConnectionEndingMidFrameIsReportedAsTruncated() throws {
        let whole = bytes([frame(16, "payload")])
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        try channel.writeInbound(whole.getSlice(at: 0, length: whole.readableBytes - 2)!)
        #expect(throws: WireError.truncated) { _ = try channel.finish() }
    }

    @Test func theEncoderWritesWhatTheDecoderReads() throws {
        let channel = EmbeddedChannel(handlers: [MessageToByteHandler(FrameEncoder()), ByteToMessageHandler(FrameDecoder())])
        let sent = frame(20, "round trip")
        try channel.writeOutbound(sent)
        let wire = try #require(try channel.readOutbound(as: ByteBuffer.self))
        try channel.writeInbound(wire)
        #expect(try channel.readInbound(as: Frame.self) == sent)
        _ = try channel.finish()
    }

    @Test func payloadReaderRefusesHostileLengthsWithoutTrapping() {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt16(60_000))
        buffer.writeString("short")
        var reader = PayloadReader(buffer)
        #expect(throws: WireError.self) { try reader.string("name") }
        var cut = PayloadReader(ByteBuffer(bytes: [0x00]))
        #expect(throws: WireError.self) { try cut.integer("count", as: UInt32.self) }
    }
}
