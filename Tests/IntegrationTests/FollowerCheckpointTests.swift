import EventLog
import Node
import Foundation
import OrderDomain
import Testing

/// Followers checkpoint the orders they copy, so the node that takes an
/// order over starts from a checkpoint as its leader would.
@Suite(.serialized) struct FollowerCheckpointTests {
    @Test func followersCheckpointCopiedOrdersAndTheCheckpointsMatchTheEvents() async throws {
        let cluster = try TestCluster(extraArguments: ["--checkpoint-every", "5"])
        defer { cluster.stopAll(signal: SIGKILL) }
        for id in ["api-1", "api-2", "api-3"] { try await cluster.start(id) }
        try await cluster.waitForView(["api-1": "alive", "api-2": "alive", "api-3": "alive"], on: cluster.ids)

        let orders = (0..<4).map { "cp-\($0)" }
        func send(_ path: String, via node: String, _ body: String) async throws -> HTTP.Reply {
            try await HTTP.command("http://\(cluster.http(node))\(path)", body)
        }
        for order in orders {
            let placed = try await send("/orders", via: "api-1", #"{"id":"\#(order)","customer":"c","lines":[{"sku":"SKU-00001","qty":1}]}"#)
            #expect([200, 201].contains(placed.status), "\(placed.body)")
            for payment in 0..<12 {
                let paid = try await send("/orders/\(order)/payments", via: "api-2", #"{"id":"p-\#(payment)","amount_cents":1}"#)
                #expect([200, 201].contains(paid.status), "\(paid.body)")
            }
        }
        try await cluster.waitForReplicasToCatchUp()

        for order in orders {
            let placement = try await HTTP.send(.GET, "http://\(cluster.http("api-1"))/cluster?order=\(order)").body["order"] as? [String: Any]
            let leader = try #require(placement?["leader"] as? String)
            for id in cluster.ids where id != leader {
                let log = try cluster.log(id)
                let (checkpoint, after) = try await waitUntil("\(id) to checkpoint its copy of \(order)") {
                    let loaded = try await log.load(orderID: order)
                    return loaded.checkpoint == nil ? nil : loaded
                }
                let copy = try #require(checkpoint)
                #expect(copy.version >= 5, "\(id): checkpoint of \(order) at \(copy.version)")
                // Checkpoint plus the events after it is the fold of every event.
                let all = try await log.events(orderID: order).map {
                    try $0.streamEvent()
                }
                let rest = try after.map {
                    try $0.streamEvent()
                }
                let fromCheckpoint = OrderMerge.fold(try OrderState.fromSnapshot(copy.state), rest)
                #expect(fromCheckpoint == OrderMerge.fold(OrderState(orderID: ClientID(order)!), all), "\(id): \(order)")
                #expect(all.count == 13, "\(id) holds every event of \(order)")
            }
        }

        // The leader dies; the next replica serves every order from its
        // checkpoint and the events after it.
        cluster.stop("api-1", signal: SIGKILL)
        for order in orders {
            let reply = try await waitUntil("\(order) to be served after api-1 died", timeout: .seconds(20)) {
                let reply = try await HTTP.send(.GET, "http://\(cluster.http("api-2"))/orders/\(order)")
                return reply.status == 200 ? reply : nil
            }
            #expect((reply.body["payments"] as? [Any])?.count == 12, "\(order): \(reply.body)")
            #expect(reply.body["paid_cents"] as? Int == 12)
        }
    }
}
