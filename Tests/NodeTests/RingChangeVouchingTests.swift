import HashRing
import LogStorage
import Logging
import NodeRuntime
import OrderDomain
import Replication
import Synchronization
import Testing
import Wire

@testable import Node

/// A follower's copies are filtered by the ring they arrive under, and its
/// acknowledgements count for a leader only under the ring its view names.
/// After a ring change, until it has copied the orders the new ring gives
/// it (the backfill), it must vouch on the ring whose orders it holds in
/// full, and keep what that ring gives it: a leader on the new ring that
/// counted its acknowledgements would count events it dropped.
@Suite struct RingChangeVouchingTests {
    /// A fixed view that the test moves from one ring to another.
    final class Directory: ReplicaDirectory {
        let ring = Mutex<Set<String>>([])
        /// Peers reachable in this view, by id (none unless a test says).
        let peers = Mutex<[String: String]>([:])
        let nodeID: String
        let replicationFactor: Int

        init(nodeID: String, ring: Set<String>, replicationFactor: Int) {
            self.nodeID = nodeID
            self.replicationFactor = replicationFactor
            self.ring.withLock { $0 = ring }
        }

        var ringMembers: Set<String> { ring.withLock { $0 } }
        var ringNodes: [String] { ringMembers.sorted() }
        private var hashRing: HashRing { HashRing(nodes: Dictionary(uniqueKeysWithValues: ringMembers.map { ($0, 1) })) }
        func preferenceList(for orderID: ClientID) -> [String] {
            hashRing.preferenceList(for: orderID.rawValue, count: replicationFactor)
        }
        var joined: Bool { true }
        func reachablePeers() -> [String: String] { peers.withLock { $0 } }
        var epoch: UInt64 { 1 }
        func leads(_ orderID: ClientID) -> Bool { preferenceList(for: orderID).first == nodeID }
        func whyNotLeading(_ orderID: ClientID) -> String? { leads(orderID) ? nil : "not the owner" }
        var vouchView: VouchView { VouchView(ring: ringNodes, eligible: ringMembers) }
        var settled: Bool { true }
        var released: Set<String> { [] }
        /// Members that left and still beat, by id (none unless a test says).
        let left = Mutex<[String: String]>([:])
        var departed: Set<String> { Set(left.withLock { $0 }.keys) }
        func departedPeers() -> [String: String] { left.withLock { $0 } }
    }

    /// No peer answers (none is reachable in this view anyway).
    struct Silence: PeerNetwork {
        let filter = PeerFilter()
        func send(_ message: PeerMessage, to address: String, timeout: Duration) async {}
        func call(_ request: PeerRequest, to address: String, timeout: Duration) async throws -> PeerReply {
            throw EngineError.unavailable("no peer in this test")
        }
        func closeAll() async {}
    }

    @Test func aFollowerVouchesOnTheRingItHoldsUntilItHasBackfilledTheNewOne() async throws {
        let old: Set<String> = ["api-2"]
        let new: Set<String> = ["api-1", "api-2", "api-3", "api-4"]
        let directory = Directory(nodeID: "api-2", ring: old, replicationFactor: 2)
        let clock = ManualClock()
        let log = InMemoryLogStore(origin: "api-2", disk: nil, newLogID: "test", clock: { clock.wallMs }) { $0() }
        var config = ReplicationConfig()
        config.partitionMode = .consistent
        let replicator = Replicator(
            log: log, network: Silence(), config: config,
            environment: NodeEnvironment(clock: clock, spawner: GlobalTaskSpawner(), randomSeed: 1), logger: Logger(label: "test"))
        replicator.attach(directory)
        #expect(await replicator.backfill(old), "alone on its ring, it holds every order")

        // Three nodes join; api-2 has not copied what the new ring gives it.
        directory.ring.withLock { $0 = new }
        let newRing = HashRing(nodes: Dictionary(uniqueKeysWithValues: new.map { ($0, 1) }))
        let order = try #require((0..<1000).lazy.map { ClientID("o-\($0)")! }.first {
            let list = newRing.preferenceList(for: $0.rawValue, count: 2)
            return list.contains("api-2") && list.first != "api-2"
        })
        let list = newRing.preferenceList(for: order.rawValue, count: 2)
        let leaderOnTheNewRing = Fence(preferenceList: list, ring: new.sorted(), leader: list[0])
        let view = try #require(replicator.view(for: list[0]))
        #expect(view.ring == old.sorted(), "it vouches on the ring it holds in full")
        #expect(!leaderOnTheNewRing.isVouched(by: view), "a leader on the new ring does not count its copies yet")
        // What it vouches for on the old ring stays true: it keeps the copies
        // of an order the old ring gives it, though the new one does not.
        let elsewhere = try #require((0..<1000).lazy.map { ClientID("o-\($0)")! }.first {
            !newRing.preferenceList(for: $0.rawValue, count: 2).contains("api-2")
        })
        let copy = EventRecord(
            origin: "api-1", offset: 1, orderID: elsewhere.rawValue, version: 1, type: "OrderPlaced", payload: "{}", eventID: "api-1-x-1",
            recordedAt: 0)
        #expect(replicator.placement()(copy), "a copy of an order of the old ring is kept until the new ring is backfilled")

        // The backfill of the new ring cannot read the others' logs: it is not
        // done, and the view stays on the old ring.
        #expect(await replicator.backfill(new) == false)
        #expect(replicator.view(for: list[0])?.ring == old.sorted())
    }
}
