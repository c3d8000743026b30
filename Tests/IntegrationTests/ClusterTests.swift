import EventLog
import Foundation
import Testing

/// Three (then four) real `orderly node` processes on port 0.
@Suite(.serialized) struct ClusterTests {
    /// This suite's own secret (see TestCluster.environment).
    static let secret = ["ORDERLY_CLUSTER_SECRET": "integration-test-cluster-secret-\(UUID().uuidString)" as String?]

    func startNode(_ id: String, in folder: borrowing TemporaryFolder, seed: String?) throws -> OrderlyProcess {
        var arguments = ["node", "--id", id, "--data", folder.path, "--http", "127.0.0.1:0", "--peer", "127.0.0.1:0"]
        if let seed { arguments += ["--seeds", seed] }
        try testCertificates(in: folder.path, for: [id])
        return try OrderlyProcess(arguments, stderrPath: folder.file("\(id).log"), environment: Self.secret)
    }

    func statuses(_ http: String) async throws -> [String: String] {
        let members = try await HTTP.send(.GET, "http://\(http)/cluster").body["members"] as? [[String: Any]] ?? []
        return Dictionary(uniqueKeysWithValues: members.compactMap { member in
            (member["id"] as? String).map { ($0, member["status"] as? String ?? "?") }
        })
    }

    func leader(of order: String, via http: String) async throws -> String? {
        let reply = try await HTTP.send(.GET, "http://\(http)/cluster?order=\(order)")
        return (reply.body["order"] as? [String: Any])?["leader"] as? String
    }

    @Test func nodesConvergeForwardToLeadersDetectDeathAndAdmitNewcomers() async throws {
        let folder = try TemporaryFolder()
        let one = try startNode("api-1", in: folder, seed: nil)
        defer { one.stop() }
        let ready1 = try await one.readyRecord()
        let seed = try #require(ready1["peer"] as? String)
        let two = try startNode("api-2", in: folder, seed: seed)
        defer { two.stop() }
        let three = try startNode("api-3", in: folder, seed: seed)
        defer { three.stop(signal: SIGKILL) }
        var http: [String: String] = ["api-1": try #require(ready1["http"] as? String)]
        http["api-2"] = try await two.waitReady()
        http["api-3"] = try await three.waitReady()

        // 1. Views converge.
        let all = ["api-1": "alive", "api-2": "alive", "api-3": "alive"]
        for node in all.keys.sorted() {
            _ = try await waitUntil("\(node) to see three live members", timeout: .seconds(20)) {
                try await statuses(http[node]!) == all ? true : nil
            }
        }

        for node in all.keys.sorted() {
            try await waitFor("\(node) to lead its orders", timeout: .seconds(20)) {
                try await HTTP.send(.GET, "http://\(http[node]!)/cluster").body["leading"] as? Bool == true
            }
        }

        // 2. A command sent to a non-leader is written to the leader's log,
        // and copied (as the leader's event) to the other replicas.
        var forwarded: (order: String, leader: String)?
        for index in 0..<200 {
            let order = "fwd-\(index)"
            if let leader = try await leader(of: order, via: http["api-1"]!), leader != "api-1" {
                forwarded = (order, leader)
                break
            }
        }
        let (order, orderLeader) = try #require(forwarded)
        let placed = try await HTTP.command("http://\(http["api-1"]!)/orders", #"{"id":"\#(order)","customer":"c","lines":[{"sku":"SKU-00001","qty":1}]}"#)
        #expect([200, 201].contains(placed.status), "\(placed.body)")
        let leaderLog = try EventLog.openReadOnly(path: EventLog.path(data: folder.path, node: orderLeader))
        let written = try await leaderLog.events(orderID: order)
        #expect(written.map(\.type) == ["OrderPlaced"], "the leader's SQLite file holds it")
        #expect(written.map(\.origin) == [orderLeader], "written by the leader")
        for node in ["api-1", "api-2", "api-3"] where node != orderLeader {
            let copy = try EventLog.openReadOnly(path: EventLog.path(data: folder.path, node: node))
            let events = try await waitUntil("\(node) to copy \(order)", timeout: .seconds(10)) {
                let events = try await copy.events(orderID: order)
                return events.isEmpty ? nil : events
            }
            #expect(events == written, "\(node) holds the leader's event as it is")
        }
        // Bad input sent to a node that forwards gets the answer its leader
        // gives, whatever the fields' sizes (a sku or customer longer than
        // the peer protocol used to carry was answered 503 after 2 s).
        for (index, (body, code)) in [
            (#""customer":"c","lines":[{"sku":"\#(String(repeating: "S", count: 300))","qty":1}]"#, "unknown_sku"),
            (#""customer":"\#(String(repeating: "é", count: 2000))","lines":[{"sku":"SKU-00001","qty":1}]"#, "invalid_customer"),
            (#""customer":"c","lines":[{"sku":"\#(String(repeating: "中", count: 3000))","qty":1}]"#, "unknown_sku"),
        ].enumerated() {
            var badOrder: String?
            for attempt in 0..<200 where badOrder == nil {
                let candidate = "bad-\(index)-\(attempt)"
                if let leader = try await leader(of: candidate, via: http["api-1"]!), leader != "api-1" { badOrder = candidate }
            }
            let bad = try #require(badOrder)
            let reply = try await HTTP.command("http://\(http["api-1"]!)/orders", #"{"id":"\#(bad)",\#(body)}"#)
            #expect(reply.status == 400, "\(code) through a forwarding node: \(reply.body)")
            #expect((reply.body["error"] as? [String: Any])?["code"] as? String == code, "\(reply.body)")
        }

        // 3. SIGKILL: the others mark the node dead within the bound (3 s
        // without heartbeats, plus gossip) and keep serving every order: the
        // next replica leads those the dead node led.
        // (The exact bound is checked on the pure core with a fake clock; here
        // a deadline only guards against never.)
        three.stop(signal: SIGKILL)
        for node in ["api-1", "api-2"] {
            _ = try await waitUntil("\(node) to mark api-3 dead", timeout: .seconds(10)) {
                try await statuses(http[node]!)["api-3"] == "dead" ? true : nil
            }
        }
        var failedOver = 0
        for index in 0..<40 {
            let order = "after-\(index)"
            let list = try await HTTP.send(.GET, "http://\(http["api-2"]!)/cluster?order=\(order)").body["order"] as? [String: Any]
            if (list?["preference_list"] as? [String])?.first == "api-3" { failedOver += 1 }
            let reply = try await HTTP.command("http://\(http["api-2"]!)/orders", #"{"id":"\#(order)","customer":"c","lines":[{"sku":"SKU-00001","qty":1}]}"#)
            #expect([200, 201].contains(reply.status), "\(order): \(reply.body)")
        }
        #expect(failedOver > 0, "some orders had the dead node first in their preference list")

        // 4. A fourth node joins without anyone restarting.
        let four = try startNode("api-4", in: folder, seed: seed)
        defer { four.stop() }
        http["api-4"] = try await four.waitReady()
        for node in ["api-1", "api-2", "api-4"] {
            _ = try await waitUntil("\(node) to see api-4", timeout: .seconds(20)) {
                try await statuses(http[node]!)["api-4"] == "alive" ? true : nil
            }
        }
    }
}
