import HashRing
import Testing

@Suite struct StableHashTests {
    /// Pinned: these values are part of the cluster's contract. If this test
    /// fails, every order would change nodes on upgrade.
    @Test func hashValuesArePinned() {
        #expect(StableHash.hash64("") == 0xEFD01F60BA992926)
        #expect(StableHash.hash64("a") == 0x82A2A958A9BECE5B)
        #expect(StableHash.hash64("order-1") == 0x491B422E3AF0D9A5)
        #expect(StableHash.hash64("api-1#0") == 0x90AAB53072AA41A1)
    }
}

@Suite struct HashRingTests {
    static let keys = (0..<100_000).map { "order-\($0)" }
    static let three = HashRing(nodes: ["api-1": 1, "api-2": 1, "api-3": 1])

    @Test func preferenceListsHoldDistinctNodesOwnerFirst() {
        let ring = Self.three.adding("api-4").adding("api-5")
        for key in Self.keys.prefix(2000) {
            let list = ring.preferenceList(for: key, count: 3)
            #expect(list.count == 3)
            #expect(Set(list).count == 3)
            #expect(list.first == ring.owner(of: key))
        }
        #expect(Self.three.preferenceList(for: "k", count: 5).count == 3, "never more than the nodes there are")
        #expect(HashRing(nodes: [:]).preferenceList(for: "k", count: 3).isEmpty)
    }

    @Test func theRingIsTheSameHoweverItIsBuilt() {
        let built = HashRing(nodes: ["api-3": 1, "api-1": 1, "api-2": 1])
        let grown = HashRing(nodes: ["api-1": 1]).adding("api-2").adding("api-3")
        #expect(built == grown)
        for key in Self.keys.prefix(1000) {
            #expect(built.preferenceList(for: key, count: 3) == grown.preferenceList(for: key, count: 3))
        }
    }

    @Test func sharesAreEvenAndFollowWeights() {
        let shares = Self.three.shares()
        #expect(abs(shares.values.reduce(0, +) - 1) < 1e-9)
        for share in shares.values { #expect(abs(share - 1.0 / 3) < 0.06, "128 points per node keep shares near a third: \(shares)") }

        let weighted = HashRing(nodes: ["small": 1, "big": 2])
        let owned = Dictionary(grouping: Self.keys.prefix(30_000), by: { weighted.owner(of: $0)! }).mapValues(\.count)
        let ratio = Double(owned["big"]!) / Double(owned["small"]!)
        #expect(ratio > 1.6 && ratio < 2.4, "a weight-2 node owns about twice the keys: \(ratio)")
    }

    @Test func addingAFourthNodeMovesAboutAQuarterOfTheKeysAllToIt() {
        let four = Self.three.adding("api-4")
        var moved = 0
        for key in Self.keys {
            let before = Self.three.owner(of: key)
            let after = four.owner(of: key)
            if before != after {
                moved += 1
                #expect(after == "api-4", "a key only ever moves to the new node")
            }
        }
        let fraction = Double(moved) / Double(Self.keys.count)
        #expect(fraction > 0.18 && fraction < 0.32, "moved \(fraction)")
        #expect(HashRing.moduloMovedFraction(from: 3, to: 4, keys: Self.keys) > 0.7, "modulo placement moves most keys")
        #expect(Self.three.movedKeys(to: four, keys: Self.keys) == moved)
    }

    @Test func removingANodeMovesOnlyItsKeys() {
        let four = Self.three.adding("api-4")
        for key in Self.keys.prefix(20_000) {
            let before = four.owner(of: key)!
            let after = Self.three.owner(of: key)!
            if before != "api-4" { #expect(before == after, "\(key) was not on the removed node and stayed") }
        }
    }

    @Test(arguments: 0..<20)
    func randomMembershipChangesKeepTheMinimalMovementProperty(seed: Int) {
        // A seeded walk of adds and removes; print the seed on failure.
        var state = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 | 1
        func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        var ring = HashRing(nodes: ["n0": 1, "n1": 1, "n2": 1], virtualNodesPerWeight: 32)
        for step in 0..<6 {
            let grow = ring.nodes.count <= 2 || next() % 2 == 0
            let changed = grow ? "n\(3 + step)-\(seed)" : ring.nodes[Int(next() % UInt64(ring.nodes.count))]
            let next = grow ? ring.adding(changed) : ring.removing(changed)
            for key in Self.keys.prefix(500) {
                let before = ring.owner(of: key)!
                let after = next.owner(of: key)!
                if before != after {
                    #expect(grow ? after == changed : before == changed, "seed \(seed) step \(step): \(key) moved \(before) -> \(after)")
                }
            }
            ring = next
        }
    }
}
