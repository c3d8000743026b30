/// A node's view as sent to a peer. Encoded as a small length-prefixed
/// binary; `decode` checks every bound, so hostile bytes throw, never trap.
public struct GossipDigest: Sendable, Equatable {
    public static let membersMax = 1024
    public static let stringBytesMax = 256

    public var members: [Member]

    public init(members: [Member]) {
        self.members = members
    }

    public struct DecodingError: Error, Sendable, Equatable, CustomStringConvertible {
        public let description: String
    }

    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        append(UInt64(members.count), width: 2, to: &bytes)
        for member in members {
            for text in [member.id, member.http, member.peer] {
                let utf8 = Array(text.utf8.prefix(Self.stringBytesMax))
                append(UInt64(utf8.count), width: 2, to: &bytes)
                bytes += utf8
            }
            bytes.append(UInt8(MemberStatus.allCases.firstIndex(of: member.status)!))
            append(member.incarnation, width: 8, to: &bytes)
            append(member.heartbeat, width: 8, to: &bytes)
        }
        return bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodingError) -> GossipDigest {
        var reader = Reader(bytes: bytes)
        let count = Int(try reader.integer(width: 2))
        guard count <= membersMax else { throw DecodingError(description: "\(count) members, at most \(membersMax)") }
        var members: [Member] = []
        for _ in 0..<count {
            let id = try reader.string()
            let http = try reader.string()
            let peer = try reader.string()
            let statusIndex = Int(try reader.integer(width: 1))
            guard statusIndex < MemberStatus.allCases.count, !id.isEmpty else { throw DecodingError(description: "bad member") }
            members.append(Member(
                id: id, http: http, peer: peer, status: MemberStatus.allCases[statusIndex],
                incarnation: try reader.integer(width: 8), heartbeat: try reader.integer(width: 8)))
        }
        guard reader.position == bytes.count else { throw DecodingError(description: "trailing bytes") }
        return GossipDigest(members: members)
    }

    private func append(_ value: UInt64, width: Int, to bytes: inout [UInt8]) {
        for shift in stride(from: (width - 1) * 8, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    private struct Reader {
        let bytes: [UInt8]
        var position = 0

        mutating func integer(width: Int) throws(DecodingError) -> UInt64 {
            guard position + width <= bytes.count else { throw DecodingError(description: "truncated") }
            var value: UInt64 = 0
            for byte in bytes[position..<position + width] { value = value << 8 | UInt64(byte) }
            position += width
            return value
        }

        mutating func string() throws(DecodingError) -> String {
            let length = Int(try integer(width: 2))
            guard length <= GossipDigest.stringBytesMax, position + length <= bytes.count else {
                throw DecodingError(description: "string too long or truncated")
            }
            defer { position += length }
            guard let text = String(validating: bytes[position..<position + length], as: UTF8.self) else {
                throw DecodingError(description: "string is not UTF-8")
            }
            return text
        }
    }
}
