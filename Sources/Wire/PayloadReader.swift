import NIOCore

/// Bounds-checked reads of a message payload: hostile bytes throw, never trap.
public struct PayloadReader {
    public var buffer: ByteBuffer

    public init(_ buffer: ByteBuffer) {
        self.buffer = buffer
    }

    public mutating func integer<T: FixedWidthInteger>(_ what: String, as: T.Type = T.self) throws(WireError) -> T {
        guard let value = buffer.readInteger(as: T.self) else { throw .malformed("\(what) is missing") }
        return value
    }

    public mutating func bytes(_ what: String, max: Int) throws(WireError) -> [UInt8] {
        let count = Int(try integer(what, as: UInt16.self))
        guard count <= max else { throw .malformed("\(what) is \(count) bytes, at most \(max) allowed") }
        guard let bytes = buffer.readBytes(length: count) else { throw .malformed("\(what) is cut short") }
        return bytes
    }

    public mutating func string(_ what: String, max: Int = WireLimits.stringBytesMax) throws(WireError) -> String {
        let count = Int(try integer(what, as: UInt16.self))
        guard count <= max else { throw .malformed("\(what) is \(count) bytes, at most \(max) allowed") }
        return try text(what, count: count)
    }

    /// The next `count` bytes as UTF-8 text, validated where they lie (no
    /// copy of the bytes first: a batch of events is mostly strings).
    /// Like `bytes`, the bytes are consumed when they are there, also when
    /// they are refused as not UTF-8.
    public mutating func text(_ what: String, count: Int) throws(WireError) -> String {
        guard count >= 0, buffer.readableBytes >= count else { throw .malformed("\(what) is cut short") }
        let text = buffer.withUnsafeReadableBytes { bytes in
            String(validating: UnsafeRawBufferPointer(rebasing: bytes[..<count]), as: UTF8.self)
        }
        buffer.moveReaderIndex(forwardBy: count)
        guard let text else { throw .malformed("\(what) is not UTF-8") }
        return text
    }

    /// The payload MUST be fully read: trailing bytes mean a bad encoder.
    public func finish(_ what: String) throws(WireError) {
        guard buffer.readableBytes == 0 else { throw .malformed("\(buffer.readableBytes) unexpected bytes after \(what)") }
    }
}

extension ByteBuffer {
    /// A length-prefixed (UInt16) byte string.
    public mutating func writeLengthPrefixed(_ bytes: some Collection<UInt8>) {
        writeInteger(UInt16(bytes.count))
        writeBytes(bytes)
    }

    public mutating func writeLengthPrefixed(_ string: String) {
        writeInteger(UInt16(string.utf8.count))
        writeString(string)
    }
}

extension String {
    /// The longest prefix that is at most `maxBytes` of UTF-8 and ends
    /// between two Unicode scalars: a message cut to fit a field the peer
    /// reads with that limit (a cut by characters could exceed it).
    public func prefix(utf8Bytes maxBytes: Int) -> String {
        guard utf8.count > maxBytes else { return self }
        var kept = String.UnicodeScalarView()
        var bytes = 0
        for scalar in unicodeScalars {
            let width = UTF8.width(scalar)
            guard bytes + width <= maxBytes else { break }
            bytes += width
            kept.append(scalar)
        }
        return String(kept)
    }
}
