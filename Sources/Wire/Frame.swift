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
    /// The protocol version in its header: as read, or to write (a
    /// connection's encoder writes the version it negotiated instead).
    public var version: UInt8

    public init(type: UInt8, payload: ByteBuffer, version: UInt8 = WireLimits.protocolVersion) {
        self.type = type
        self.payload = payload
        self.version = version
    }

    public func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(WireLimits.headerBytes - 4 + payload.readableBytes))
        buffer.writeInteger(WireLimits.magic)
        buffer.writeInteger(version)
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

    private let version: WireVersion?

    /// `version` is the connection's (nil: any version this release speaks).
    public init(version: WireVersion? = nil) { self.version = version }

    public mutating func decode(buffer: inout ByteBuffer) throws -> Frame? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        let frameBytes = Int(length) + 4
        guard frameBytes <= WireLimits.frameBytesMax else { throw WireError.frameTooLarge(bytes: frameBytes) }
        guard frameBytes >= WireLimits.headerBytes else { throw WireError.frameTooShort(bytes: frameBytes) }
        if buffer.readableBytes >= 6, let magic = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt16.self), magic != WireLimits.magic {
            throw WireError.badMagic(magic)
        }
        if buffer.readableBytes >= 7, let version = buffer.getInteger(at: buffer.readerIndex + 6, as: UInt8.self),
            !(self.version?.accepting ?? WireLimits.protocolVersions).contains(version)
        {
            throw WireError.unsupportedVersion(version)
        }
        guard buffer.readableBytes >= frameBytes else { return nil }
        buffer.moveReaderIndex(forwardBy: 6)
        let version: UInt8 = buffer.readInteger()!
        let type: UInt8 = buffer.readInteger()!
        let checksum: UInt32 = buffer.readInteger()!
        let payload = buffer.readSlice(length: frameBytes - WireLimits.headerBytes)!
        guard Frame.checksum(payload) == checksum else { throw WireError.checksumMismatch }
        return Frame(type: type, payload: payload, version: version)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Frame? {
        if let frame = try decode(buffer: &buffer) { return frame }
        if buffer.readableBytes > 0 { throw WireError.truncated }
        return nil
    }
}

public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = Frame

    private let version: WireVersion?

    /// `version` is the connection's (nil: each frame's own).
    public init(version: WireVersion? = nil) { self.version = version }

    public func encode(data: Frame, out: inout ByteBuffer) throws {
        var frame = data
        if let version { frame.version = version.writing }
        frame.write(to: &out)
    }
}

/// The protocol version of one connection, shared by its decoder, encoder
/// and handshake (all on the connection's event loop). Before the
/// handshake a client accepts the versions it speaks and a server any it
/// can answer (a newer client's hello too: it answers in its own newest);
/// from the handshake on, both write and accept the negotiated one alone.
public final class WireVersion: @unchecked Sendable {
    public var writing: UInt8
    public var accepting: ClosedRange<UInt8>

    public init(writing: UInt8, accepting: ClosedRange<UInt8>) {
        self.writing = writing
        self.accepting = accepting
    }

    /// A dialing node: its hello in its newest version.
    public static func client(speaking versions: ClosedRange<UInt8>) -> WireVersion {
        WireVersion(writing: versions.upperBound, accepting: versions)
    }

    /// A listening node: a hello of any version from its oldest on.
    public static func server(speaking versions: ClosedRange<UInt8>) -> WireVersion {
        WireVersion(writing: versions.upperBound, accepting: versions.lowerBound...UInt8.max)
    }

    public func settle(on version: UInt8) {
        writing = version
        accepting = version...version
    }
}
