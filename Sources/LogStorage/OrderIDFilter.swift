/// A Bloom filter of the order ids a log holds events of: when it says an id
/// is absent, the log holds no event of that order, so reading the order
/// (every new order's activation) needs no SQLite read. It may answer
/// "maybe" for an id it never saw (a false positive, well under 1%), which
/// costs only the read that would have been made anyway; it never answers
/// "absent" for an id it was given.
///
/// It grows by layers, each holding twice as many ids as the one before,
/// so it never needs the ids it holds again: an id goes into the newest
/// layer, and a lookup asks every layer. Pure: no locking, no I/O.
public struct OrderIDFilter: Sendable {
    struct Layer: Sendable {
        var words: [UInt64]
        var count = 0
        let capacity: Int
        /// `words.count * 64 - 1`; the bit count is a power of two.
        let mask: UInt64

        init(capacity: Int) {
            self.capacity = capacity
            var bits = 64
            while bits < capacity * OrderIDFilter.bitsPerID { bits <<= 1 }
            words = [UInt64](repeating: 0, count: bits / 64)
            mask = UInt64(bits - 1)
        }

        func contains(_ hash: (UInt64, UInt64)) -> Bool {
            var position = hash.0
            for _ in 0..<OrderIDFilter.hashes {
                let bit = position & mask
                if words[Int(bit >> 6)] & (1 << (bit & 63)) == 0 { return false }
                position &+= hash.1
            }
            return true
        }

        mutating func insert(_ hash: (UInt64, UInt64)) {
            var position = hash.0
            for _ in 0..<OrderIDFilter.hashes {
                let bit = position & mask
                words[Int(bit >> 6)] |= 1 << (bit & 63)
                position &+= hash.1
            }
            count += 1
        }
    }

    /// At least this many bits an id (rounded up to a power of two per
    /// layer) and seven probes: a full layer answers "maybe" for about 0.8%
    /// of absent ids, a half-full one for well under 0.1%.
    static let bitsPerID = 10
    static let hashes = 7

    private(set) var layers: [Layer]

    /// `initialCapacity`: how many ids the first layer holds before a
    /// second one (twice as big) is added.
    public init(initialCapacity: Int = 1 << 16) {
        layers = [Layer(capacity: max(1, initialCapacity))]
    }

    /// False only if `id` was never inserted.
    public func mightContain(_ id: String) -> Bool {
        let hash = Self.hash(id)
        return layers.contains { $0.contains(hash) }
    }

    /// Adds `id` (an id that already reads as present changes nothing).
    public mutating func insert(_ id: String) {
        let hash = Self.hash(id)
        if layers.contains(where: { $0.contains(hash) }) { return }
        if layers[layers.count - 1].count >= layers[layers.count - 1].capacity {
            layers.append(Layer(capacity: layers[layers.count - 1].capacity * 2))
        }
        layers[layers.count - 1].insert(hash)
    }

    /// Ids inserted (less those that already read as present).
    public var count: Int { layers.reduce(0) { $0 + $1.count } }

    /// Memory the bits take.
    public var bytes: Int { layers.reduce(0) { $0 + $1.words.count * 8 } }

    /// Two independent 64-bit hashes of the id's UTF-8 bytes (FNV-1a, then
    /// a SplitMix64 finaliser of it for the stride, odd so that probes of a
    /// power-of-two table never repeat within seven).
    static func hash(_ id: String) -> (UInt64, UInt64) {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in id.utf8 {
            h ^= UInt64(byte)
            h &*= 0x0000_0100_0000_01b3
        }
        var z = h &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        z ^= z >> 31
        return (h ^ (h >> 29), z | 1)
    }
}
