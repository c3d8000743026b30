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
        let bytes = try bytes(what, max: max)
        guard let text = String(validating: bytes, as: UTF8.self) else { throw .malformed("\(what) is not UTF-8") }
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
        writeLengthPrefixed(Array(string.utf8))
    }
}
