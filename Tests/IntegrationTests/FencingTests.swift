import EventLog
import Foundation
import Node
import OrderDomain
import Testing

/// The two failures that started the fencing work, against real processes
/// (consistent mode, three replicas, acks quorum): a leader cut off by the
/// others before it knows, asked to decide while a new leader decides the
/// opposite; and a node restarted on a replaced disk.
@Suite(.serialized) struct FencingTests {
    /// An order id whose preference list starts with `node`.
    static func order(ledBy node: String, prefix: String, in cluster: TestCluster) async throws -> (id: String, list: [String]) {
        for index in 1...500 {
            let id = "\(prefix)-\(index)"
            let placement = try await HTTP.send(.GET, "http://\(cluster.http(node))/cluster?order=\(id)").body["order"] as? [String: Any]
            if let list = placement?["preference_list"] as? [String], list.first == node { return (id, list) }
        }
        throw TestFailure("no order id among 500 is led by \(node)")
    }

    /// In every log, each (order, version) folds to one event: events
    /// there are copies of one, or all but one are superseded.
    static func expectOneEventPerVersion(_ cluster: TestCluster, order: String) async throws {
        for id in cluster.ids {
            let records = try await cluster.log(id).events(orderID: order)
            let stream = try records.map { try $0.streamEvent() }
            let superseded = OrderMerge.superseded(base: OrderState(orderID: ClientID(order)!), stream)
            let kept = records.filter { !superseded.contains($0.eventID) }
            for (version, atVersion) in Dictionary(grouping: kept, by: \.version) {
                #expect(Set(atVersion.map(\.eventID)).count == 1, "\(id): version \(version) of \(order) folds two events: \(atVersion.map(\.type))")
            }
        }
    }

    /// The first example of the simulator issue: api-L leads a paid order;
    /// the other two cut it off (only they: it does not know). Asked to
    /// ship, it must not get the shipment acknowledged, and once another
    /// node leads the order and acknowledges a cancel, the cancel stands on
    /// every node after the heal: no shipment folded beside it.
    @Test func aLeaderCutOffByTheOthersCannotOverruleTheNextLeadersCancel() async throws {
        let cluster = try await PartitionTests.startThree("consistent")
        defer { cluster.stopAll(signal: SIGKILL) }
        let (order, list) = try await Self.order(ledBy: "api-3", prefix: "cut", in: cluster)
        let (leader, others) = (list[0], Array(list.dropFirst()))
        let placed = try await PartitionTests.place(order, via: cluster.http(leader))
        #expect(placed.status == 201, "\(placed.body)")
        let total = try #require(placed.body["total_cents"] as? Int)
        #expect(try await PartitionTests.pay(order, "pay-1", total, via: cluster.http(leader)).status == 201)
        try await cluster.waitForReplicasToCatchUp()

        // Only the other two cut the leader off.
        for node in others {
            #expect(try await cluster.admin(node, .post, #"{"drop":["\#(leader)"]}"#).status == 200)
        }
        let shipped = try await HTTP.send(.POST, "http://\(cluster.http(leader))/orders/\(order)/shipments", #"{"id":"ship-1"}"#, timeout: .seconds(30))
        #expect(!(200..<300).contains(shipped.status), "the cut-off leader had a shipment acknowledged: \(shipped.body)")

        let cancelled = try await waitUntil("another node to take the cancel", timeout: .seconds(30)) {
            let reply = try await HTTP.send(.POST, "http://\(cluster.http(others[0]))/orders/\(order)/cancel", #"{"reason":"changed mind"}"#)
            return reply.status == 503 ? nil : reply
        }
        #expect(cancelled.status == 200, "\(cancelled.body)")
        #expect(cancelled.body["status"] as? String == "cancelled")

        // The deposed leader keeps trying while the cut lasts.
        _ = try? await HTTP.send(.POST, "http://\(cluster.http(leader))/orders/\(order)/shipments", #"{"id":"ship-2"}"#, timeout: .seconds(10))

        try await PartitionTests.heal(cluster)
        try await cluster.waitForReplicasToCatchUp()
        for id in cluster.ids {
            let state = try await waitUntil("\(order) via \(id)", timeout: .seconds(20)) {
                let reply = try await HTTP.send(.GET, "http://\(cluster.http(id))/orders/\(order)")
                return reply.status == 200 ? reply.body : nil
            }
            #expect(state["status"] as? String == "cancelled", "\(id): \(state)")
            #expect(state["refunded_cents"] as? Int == total, "\(id): the payment goes back once: \(state)")
            #expect((state["conflicts"] as? [[String: Any]] ?? []).isEmpty, "\(id): \(String(describing: state["conflicts"]))")
            #expect(state["shipment_id"] == nil || state["shipment_id"] is NSNull, "\(id): \(state)")
        }
        try await Self.expectOneEventPerVersion(cluster, order: order)
    }

    /// The second: SIGKILL a node, remove its data folder, start it again
    /// with the same id. Every acknowledged order it led is served through
    /// every node, it leads new orders, and every copy of its log agrees
    /// with its own log at every offset.
    @Test func aNodeRestartedOnAReplacedDiskServesWhatItLedAndReusesNoOffset() async throws {
        let cluster = try await PartitionTests.startThree("consistent")
        defer { cluster.stopAll(signal: SIGKILL) }
        let victim = "api-2"
        var acknowledged: [String: Int] = [:]  // order -> paid cents
        var index = 0
        while acknowledged.count < 12 {
            index += 1
            let (order, _) = try await Self.order(ledBy: victim, prefix: "disk-\(index)", in: cluster)
            let placed = try await PartitionTests.place(order, via: cluster.http(victim))
            #expect(placed.status == 201, "\(placed.body)")
            let total = try #require(placed.body["total_cents"] as? Int)
            if index.isMultiple(of: 2) {
                #expect(try await PartitionTests.pay(order, "pay-\(order)", total, via: cluster.http(victim)).status == 201)
                acknowledged[order] = total
            } else {
                acknowledged[order] = 0
            }
        }
        let before = try await cluster.log(victim).scan(origin: victim, fromOffset: 1, limit: 10_000)
        #expect(before.count >= 12)

        cluster.stop(victim, signal: SIGKILL)
        try await waitFor("\(victim) to exit", timeout: .seconds(10)) { !cluster.process(victim).process.isRunning }
        try FileManager.default.removeItem(atPath: (cluster.folder.path as NSString).appendingPathComponent(victim))
        try await cluster.start(victim)
        try await cluster.waitForView(["api-1": "alive", "api-2": "alive", "api-3": "alive"], on: cluster.ids)

        for (order, paid) in acknowledged.sorted(by: { $0.key < $1.key }) {
            for id in cluster.ids {
                let reply = try await waitUntil("\(order) via \(id)", timeout: .seconds(20)) {
                    let reply = try await HTTP.send(.GET, "http://\(cluster.http(id))/orders/\(order)")
                    return reply.status == 503 ? nil : reply
                }
                #expect(reply.status == 200, "\(id) lost acknowledged order \(order): \(reply.body)")
                #expect(reply.body["paid_cents"] as? Int == paid, "\(id): \(order): \(reply.body)")
            }
        }
        // It leads new orders, at offsets its old log never used.
        let (fresh, _) = try await Self.order(ledBy: victim, prefix: "after", in: cluster)
        let placed = try await waitUntil("\(victim) to take a new order", timeout: .seconds(20)) {
            let reply = try await PartitionTests.place(fresh, via: cluster.http(victim))
            return reply.status == 503 ? nil : reply
        }
        #expect(placed.status == 201, "\(placed.body)")
        try await cluster.waitForReplicasToCatchUp()
        let own = try await cluster.log(victim).scan(origin: victim, fromOffset: 1, limit: 10_000)
        let ownByOffset = Dictionary(uniqueKeysWithValues: own.map { ($0.offset, $0.eventID) })
        for event in before {
            #expect(ownByOffset[event.offset] == event.eventID, "\(victim)'s own log lost or replaced offset \(event.offset)")
        }
        for id in cluster.ids where id != victim {
            let copy = try await cluster.log(id).scan(origin: victim, fromOffset: 1, limit: 10_000)
            for event in copy {
                #expect(ownByOffset[event.offset] == event.eventID, "\(id)'s copy of \(victim) holds another event at offset \(event.offset)")
            }
        }
    }

    /// A node restarted on an empty disk waits for every node its peers'
    /// copies and terms name, but not for one that left the cluster: old
    /// rows name it for ever.
    @Test func aReplacedDiskDoesNotWaitForANodeThatLeft() async throws {
        let cluster = try TestCluster(extraArguments: ["--partition-mode", "consistent"])
        defer { cluster.stopAll(signal: SIGKILL) }
        for id in ["api-1", "api-2", "api-3", "api-4"] { try await cluster.start(id) }
        let all = ["api-1": "alive", "api-2": "alive", "api-3": "alive", "api-4": "alive"]
        try await cluster.waitForView(all, on: cluster.ids)
        // Orders led by each node, api-4 among them: copies of its log and
        // terms naming it end up on the others.
        for node in ["api-4", "api-2"] {
            for n in 1...3 {
                let (order, _) = try await Self.order(ledBy: node, prefix: "left-\(node)-\(n)", in: cluster)
                #expect(try await PartitionTests.place(order, via: cluster.http("api-1")).status == 201)
            }
        }
        try await cluster.waitForReplicasToCatchUp()
        cluster.remove("api-4", signal: SIGTERM)
        try await cluster.waitForView(["api-4": "left"], on: cluster.ids)

        cluster.stop("api-2", signal: SIGKILL)
        try await waitFor("api-2 to exit", timeout: .seconds(10)) { !cluster.process("api-2").process.isRunning }
        try FileManager.default.removeItem(atPath: (cluster.folder.path as NSString).appendingPathComponent("api-2"))
        try await cluster.start("api-2")
        try await cluster.waitForView(["api-1": "alive", "api-2": "alive", "api-3": "alive", "api-4": "left"], on: cluster.ids)
        try await waitFor("api-2 to recover its log", timeout: .seconds(30)) {
            let view = try await HTTP.send(.GET, "http://\(cluster.http("api-2"))/cluster").body
            return (view["replication"] as? [String: Any])?["recovering"] == nil
        }
        let (order, _) = try await Self.order(ledBy: "api-2", prefix: "after-left", in: cluster)
        let placed = try await waitUntil("api-2 to take an order it leads", timeout: .seconds(20)) {
            let reply = try await PartitionTests.place(order, via: cluster.http("api-2"))
            return reply.status == 503 ? nil : reply
        }
        #expect(placed.status == 201, "\(placed.body)")
    }

    /// A node stopped with SIGTERM hands over before its process ends: with
    /// every member up it ends once the others hold the ring without it, and
    /// they show it left; each order it led is still read on every node.
    /// With a member down it cannot hand over: it takes its departure back
    /// and stops as a crashed node does, so the others keep it on the ring
    /// (dead, not left) and a recovery waits for it.
    @Test func aNodeStoppedWithSIGTERMHandsOverOrStopsAsCrashed() async throws {
        let cluster = try TestCluster(extraArguments: ["--partition-mode", "consistent"])
        defer { cluster.stopAll(signal: SIGKILL) }
        let ids = ["api-1", "api-2", "api-3", "api-4"]
        for id in ids { try await cluster.start(id) }
        try await cluster.waitForView(Dictionary(uniqueKeysWithValues: ids.map { ($0, "alive") }), on: ids)
        var led: [String] = []
        for n in 1...3 {
            let (order, _) = try await Self.order(ledBy: "api-4", prefix: "handover-\(n)", in: cluster)
            #expect(try await PartitionTests.place(order, via: cluster.http("api-1")).status == 201)
            led.append(order)
        }
        try await cluster.waitForReplicasToCatchUp()

        let leaver = cluster.process("api-4")
        cluster.remove("api-4", signal: SIGTERM)
        #expect(!leaver.process.isRunning)
        let leaverLog = leaver.stderrTail()
        #expect(leaverLog.contains("left the cluster") && !leaverLog.contains("could not hand over"), "\(leaverLog)")
        let rest = ["api-1", "api-2", "api-3"]
        try await cluster.waitForView(["api-4": "left"], on: rest)
        for order in led {
            for id in rest {
                let read = try await waitUntil("\(order) to be read via \(id)", timeout: .seconds(20)) {
                    let reply = try await HTTP.send(.GET, "http://\(cluster.http(id))/orders/\(order)")
                    return reply.status == 503 ? nil : reply
                }
                #expect(read.status == 200, "\(order) via \(id): \(read.body)")
            }
        }

        // api-2 is killed; api-3, stopped at once, cannot hand over to it.
        cluster.stop("api-2", signal: SIGKILL)
        let stuck = cluster.process("api-3")
        cluster.stop("api-3", signal: SIGTERM)
        #expect(!stuck.process.isRunning)
        let stuckLog = stuck.stderrTail()
        #expect(stuckLog.contains("could not hand over"), "\(stuckLog)")
        try await cluster.waitForView(["api-2": "dead", "api-3": "dead"], on: ["api-1"])
    }
}
