/// What happened in a run, for people and for the determinism check: the
/// last lines of it in a ring (printed with a failing seed), every line
/// when replaying with `--trace`, and a hash of the whole history (every
/// message, every event written, every client answer) that two runs of one
/// seed must share.
final class Trace: @unchecked Sendable {
    struct Line {
        let timeNs: Int64
        let text: String
    }

    private var ring: [Line?]
    private var next = 0
    private(set) var hash = FNV1a()
    /// Every line is also printed here as it happens (replay with --trace).
    let stream: ((String) -> Void)?
    /// Lines are only formatted when someone may read them.
    let keepsText: Bool

    init(capacity: Int, stream: ((String) -> Void)? = nil) {
        ring = Array(repeating: nil, count: max(1, capacity))
        self.stream = stream
        keepsText = capacity > 0 || stream != nil
    }

    /// Mixes facts into the history's hash without writing a line.
    func mix(_ values: Int64...) {
        for value in values { hash.add(value) }
    }

    func mix(_ text: String) { hash.add(text) }

    /// A line of the trace; `hashed` lines count in the history's hash.
    func record(_ timeNs: Int64, hashed: Bool = true, _ text: @autoclosure () -> String) {
        guard keepsText || hashed else { return }
        let line = text()
        if hashed {
            hash.add(timeNs)
            hash.add(line)
        }
        ring[next] = Line(timeNs: timeNs, text: line)
        next = (next + 1) % ring.count
        if let stream { stream(Self.format(timeNs, line)) }
    }

    /// The last lines, oldest first.
    func tail(_ count: Int) -> [String] {
        var lines: [String] = []
        for step in 0..<ring.count {
            if let line = ring[(next + step) % ring.count] { lines.append(Self.format(line.timeNs, line.text)) }
        }
        return Array(lines.suffix(count))
    }

    static func format(_ timeNs: Int64, _ text: String) -> String {
        let ms = timeNs / 1_000_000
        let micros = (timeNs / 1000) % 1000
        let fraction = String(micros + 1000).dropFirst()
        return "\(ms).\(fraction)ms \(text)"
    }
}

/// 64-bit FNV-1a: small, and the same in every process (Swift's `Hasher`
/// is seeded per process).
struct FNV1a: Sendable, Equatable {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(_ byte: UInt8) {
        value ^= UInt64(byte)
        value &*= 0x0000_0100_0000_01B3
    }

    mutating func add(_ integer: Int64) {
        var bits = UInt64(bitPattern: integer)
        for _ in 0..<8 {
            add(UInt8(truncatingIfNeeded: bits))
            bits >>= 8
        }
    }

    mutating func add(_ text: String) {
        for byte in text.utf8 { add(byte) }
        add(UInt8(0xFF))
    }

    var hex: String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
