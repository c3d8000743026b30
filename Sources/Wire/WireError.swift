/// Why a connection is closed. Each closes only that connection.
public enum WireError: Error, Sendable, Equatable, CustomStringConvertible {
    case frameTooLarge(bytes: Int)
    case frameTooShort(bytes: Int)
    case badMagic(UInt16)
    case unsupportedVersion(UInt8)
    case checksumMismatch
    case truncated
    case malformed(String)
    case unexpectedMessage(String)
    case wrongCluster(expected: String, got: String)
    case authenticationFailed(String)

    public var description: String {
        switch self {
        case .frameTooLarge(let bytes): return "frame of \(bytes) bytes exceeds the limit of \(WireLimits.frameBytesMax)"
        case .frameTooShort(let bytes): return "frame length \(bytes) is shorter than a header"
        case .badMagic(let magic): return "bad magic 0x\(String(magic, radix: 16)): not an orderly peer"
        case .unsupportedVersion(let version): return "protocol version \(version) is not supported (this node speaks \(WireLimits.protocolVersions.lowerBound) to \(WireLimits.protocolVersion))"
        case .checksumMismatch: return "frame checksum mismatch: corrupt frame"
        case .truncated: return "connection ended in the middle of a frame"
        case .malformed(let what): return "malformed message: \(what)"
        case .unexpectedMessage(let what): return "unexpected message: \(what)"
        case .wrongCluster(let expected, let got): return "peer belongs to cluster '\(got)', not '\(expected)'"
        case .authenticationFailed(let why): return "authentication failed: \(why)"
        }
    }
}
