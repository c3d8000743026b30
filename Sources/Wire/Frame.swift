import Checksum
import NIOCore

/// One unit on the wire:
///
///     length   UInt32  bytes after this field (header rest + payload)
///     magic    UInt16  0x4F52
///     version  UInt8   protocol version
///     type     UInt8   message type
///     checksum UInt32  CRC-32C of the payload
///     payload  bytes
///
/// All integers big-endian.
public struct Frame: Sendable, Equatable {
    public var type: UInt8
    public var payload: ByteBuffer

    public init(type: UInt8, payload: ByteBuffer) {
        self.type = type
        self.payload = payload
    }

    public func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(WireLimits.headerBytes - 4 + payload.readableBytes))
        buffer.writeInteger(WireLimits.magic)
        buffer.writeInteger(WireLimits.protocolVersion)
        buffer.writeInteger(type)
        buffer.writeInteger(Self.checksum(payload))
        var copy = payload
        buffer.writeBuffer(&copy)
    }

    static func checksum(_ payload: ByteBuffer) -> UInt32 {
        payload.withUnsafeReadableBytes { bytes in
            var crc = CRC32C.Accumulator()
            crc.update(bytes)
            return crc.value
        }
    }
}

/// Splits the byte stream into frames, validating each header before it
/// buffers the body: a hostile length fails at once, never allocates.
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = Frame

    public init() {}

    public mutating func decode(buffer: inout ByteBuffer) throws -> Frame? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        let frameBytes = Int(length) + 4
        guard frameBytes <= WireLimits.frameBytesMax else { throw WireError.frameTooLarge(bytes: frameBytes) }
        guard frameBytes >= WireLimits.headerBytes else { throw WireError.frameTooShort(bytes: frameBytes) }
        if buffer.readableBytes >= 6, let magic = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt16.self), magic != WireLimits.magic {
            throw WireError.badMagic(magic)
        }
        if buffer.readableBytes >= 7, let version = buffer.getInteger(at: buffer.readerIndex + 6, as: UInt8.self), version != WireLimits.protocolVersion {
            throw WireError.unsupportedVersion(version)
        }
        guard buffer.readableBytes >= frameBytes else { return nil }
        buffer.moveReaderIndex(forwardBy: 7)
        let type: UInt8 = buffer.readInteger()!
        let checksum: UInt32 = buffer.readInteger()!
        let payload = buffer.readSlice(length: frameBytes - WireLimits.headerBytes)!
        guard Frame.checksum(payload) == checksum else { throw WireError.checksumMismatch }
        return Frame(type: type, payload: payload)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Frame? {
        if let frame = try decode(buffer: &buffer) { return frame }
        if buffer.readableBytes > 0 { throw WireError.truncated }
        return nil
    }
}

public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = Frame

    public init() {}

    public func encode(data: Frame, out: inout ByteBuffer) throws {
        data.write(to: &out)
    }
}
