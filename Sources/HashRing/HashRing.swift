/// A consistent hash ring: each node owns `weight × virtualNodesPerWeight`
/// points; a key belongs to the first point clockwise from its hash. Adding
/// or removing a node moves only the keys next to that node's points.
public struct HashRing: Sendable, Equatable {
    public static let virtualNodesPerWeightDefault = 128
    public static let weightMax = 64

    private struct Point: Sendable, Equatable, Comparable {
        let token: UInt64
        let node: String

        // Equal tokens (astronomically rare) are ordered by node id, so every
        // process builds the same ring.
        static func < (lhs: Point, rhs: Point) -> Bool {
            lhs.token != rhs.token ? lhs.token < rhs.token : lhs.node < rhs.node
        }
    }

    public let weights: [String: Int]
    public let virtualNodesPerWeight: Int
    private let points: [Point]

    /// `nodes`: node id → weight (1...weightMax; other values are clamped).
    public init(nodes: [String: Int], virtualNodesPerWeight: Int = HashRing.virtualNodesPerWeightDefault) {
        precondition(virtualNodesPerWeight >= 1, "a node needs at least one point")
        let weights = nodes.mapValues { min(max($0, 1), Self.weightMax) }
        var points: [Point] = []
        points.reserveCapacity(weights.values.reduce(0, +) * virtualNodesPerWeight)
        for (node, weight) in weights {
            for index in 0..<(weight * virtualNodesPerWeight) {
                points.append(Point(token: StableHash.hash64("\(node)#\(index)"), node: node))
            }
        }
        self.weights = weights
        self.virtualNodesPerWeight = virtualNodesPerWeight
        self.points = points.sorted()
    }

    public var nodes: [String] { weights.keys.sorted() }
    public var isEmpty: Bool { points.isEmpty }

    /// The first `count` distinct nodes clockwise from the key (all nodes
    /// when there are fewer). The first is the key's owner.
    public func preferenceList(for key: String, count: Int) -> [String] {
        guard !points.isEmpty, count > 0 else { return [] }
        let wanted = min(count, weights.count)
        var list: [String] = []
        list.reserveCapacity(wanted)
        var index = firstPoint(atOrAfter: StableHash.hash64(key))
        while list.count < wanted {
            let node = points[index].node
            if !list.contains(node) { list.append(node) }
            index = (index + 1) % points.count
        }
        return list
    }

    public func owner(of key: String) -> String? {
        preferenceList(for: key, count: 1).first
    }

    public func adding(_ node: String, weight: Int = 1) -> HashRing {
        var weights = self.weights
        weights[node] = weight
        return HashRing(nodes: weights, virtualNodesPerWeight: virtualNodesPerWeight)
    }

    public func removing(_ node: String) -> HashRing {
        var weights = self.weights
        weights[node] = nil
        return HashRing(nodes: weights, virtualNodesPerWeight: virtualNodesPerWeight)
    }

    /// The fraction of the hash space each node owns (sums to 1).
    public func shares() -> [String: Double] {
        guard !points.isEmpty else { return [:] }
        var shares: [String: Double] = [:]
        let space = Double(UInt64.max) + 1
        for (index, point) in points.enumerated() {
            // A point owns the arc from the previous point (exclusive) to itself.
            let previous = index == 0 ? points[points.count - 1].token : points[index - 1].token
            let arc = point.token &- previous
            shares[point.node, default: 0] += (points.count == 1 ? space : Double(arc)) / space
        }
        return shares
    }

    /// How many of `keys` have another owner on `other`.
    public func movedKeys(to other: HashRing, keys: [String]) -> Int {
        keys.reduce(0) { $0 + (owner(of: $1) == other.owner(of: $1) ? 0 : 1) }
    }

    /// What `hash mod n` placement would move going from `from` to `to`
    /// nodes: the comparison the ring exists to beat.
    public static func moduloMovedFraction(from: Int, to: Int, keys: [String]) -> Double {
        guard !keys.isEmpty, from > 0, to > 0 else { return 0 }
        let moved = keys.reduce(0) { count, key in
            let hash = StableHash.hash64(key)
            return count + (hash % UInt64(from) == hash % UInt64(to) ? 0 : 1)
        }
        return Double(moved) / Double(keys.count)
    }

    /// Index of the first point with token ≥ `token`, wrapping to 0.
    private func firstPoint(atOrAfter token: UInt64) -> Int {
        var low = 0
        var high = points.count
        while low < high {
            let middle = (low + high) / 2
            if points[middle].token < token { low = middle + 1 } else { high = middle }
        }
        return low == points.count ? 0 : low
    }
}
