import EventLog
import Foundation
import OrderDomain
import Testing

/// Replication under real faults: SIGKILL and restart of leaders, SIGSTOP.
/// Clients keep sending orders and payments; afterwards every acknowledged
/// command must be held, in its acknowledged state, by every node.
@Suite(.serialized) struct ReplicationFaultTests {
    /// What clients were told: these orders exist, these payments applied.
    struct Ledger: Sendable {
        var placed: Set<String> = []
        var payments: [String: Set<String>] = [:]
        var acks = 0
    }

    /// Clients that place orders and pay each in two parts, each command
    /// sent to a random running node and retried (commands are idempotent)
    /// until it is acknowledged or `stop` is set.
    static func startClients(_ cluster: TestCluster, count: Int, tag: String, stop: Locked<Bool>, ledger: Locked<Ledger>) -> Task<Void, Never> {
        Task {
            await withTaskGroup(of: Void.self) { group in
                for client in 0..<count {
                    group.addTask {
                        var index = 0
                        while !stop.value {
                            let order = "\(tag)-\(client)-\(index)"
                            index += 1
                            let body = #"{"id":"\#(order)","customer":"c\#(client)","lines":[{"sku":"SKU-00001","qty":1}]}"#
                            guard await send(cluster, "/orders", body, stop: stop) else { return }
                            ledger.withLock { $0.placed.insert(order); $0.acks += 1 }
                            for part in 0..<2 {
                                let payment = "p-\(part)"
                                guard await send(cluster, "/orders/\(order)/payments", #"{"id":"\#(payment)","amount_cents":1}"#, stop: stop) else { return }
                                ledger.withLock { $0.payments[order, default: []].insert(payment); $0.acks += 1 }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Sends until a 2xx; false when stopped first.
    static func send(_ cluster: TestCluster, _ path: String, _ body: String, stop: Locked<Bool>) async -> Bool {
        while !stop.value {
            let running = cluster.ids.filter { cluster.process($0).process.isRunning }
            guard let target = running.randomElement() else { return false }
            // A stopped node still counts as running: a short timeout sends
            // the retry elsewhere, as a client with a deadline would.
            if let reply = try? await HTTP.send(.POST, "http://\(cluster.http(target))\(path)", body, timeout: .seconds(2)),
                (200..<300).contains(reply.status)
            {
                return true
            }
            // A client's backoff before it retries, not synchronisation.
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// Every acknowledged order and payment is served by every node and
    /// stored in every node's file; copies of each origin's log are
    /// identical; no order has two events at one version.
    static func verify(_ cluster: TestCluster, _ ledger: Ledger) async throws {
        try await cluster.waitForReplicasToCatchUp()
        for id in cluster.ids {
            for order in ledger.placed.sorted() {
                // A view may be settling (a node just seen alive again): a
                // client would retry, and so does the check, with a deadline.
                let reply = try await waitUntil("\(order) via \(id)", timeout: .seconds(15)) {
                    let reply = try await HTTP.send(.GET, "http://\(cluster.http(id))/orders/\(order)")
                    return reply.status == 503 ? nil : reply
                }
                #expect(reply.status == 200, "\(order) via \(id): \(reply.body)")
                let listed = (reply.body["payments"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
                let payments = Set(listed)
                #expect(listed.count == payments.count, "\(order) via \(id) shows a payment twice: \(listed)")
                #expect((reply.body["paid_cents"] as? Int) == payments.count, "\(order) via \(id): each 1-cent payment counts once: \(reply.body)")
                #expect(ledger.payments[order, default: []].isSubset(of: payments), "\(order) via \(id) lost a payment: \(reply.body)")
            }
        }
        cluster.stopAll()
        var copies: [String: [String: [String]]] = [:]  // origin -> node -> event ids in offset order
        for id in cluster.ids {
            let log = try cluster.log(id)
            for origin in cluster.ids {
                copies[origin, default: [:]][id] = try await log.scan(origin: origin, fromOffset: 1, limit: 10_000_000).map { "\($0.offset):\($0.eventID):\($0.checksum)" }
            }
            // One leader never writes a version twice in one term. Two
            // leaders may: a command whose first attempt was written but not
            // acknowledged (its leader died or froze) is retried on the next
            // leader; and a leader that answers from an older term's event
            // writes it again in its own term (`Transactor.anchorHead`). Such
            // a repeat must be the same fact, which the fold counts once.
            var byVersion: [String: EventRecord] = [:]
            var seen: Set<String> = []
            var payments: [String: Set<String>] = [:]
            for origin in cluster.ids {
                for event in try await log.scan(origin: origin, fromOffset: 1, limit: 10_000_000) {
                    let key = "\(event.orderID)@\(event.version)"
                    if let first = byVersion[key] {
                        #expect(first.origin != event.origin || first.term != event.term, "\(id): \(origin) wrote \(key) twice in term \(event.term)")
                        // The same fact: its payload may differ only in the
                        // term it names as the one it followed (`after_term`).
                        let fact = { (record: EventRecord) in try? OrderEvent.decode(typeName: record.type, payload: record.payload) }
                        #expect(first.type == event.type && fact(first) != nil && fact(first) == fact(event),
                            "\(id): \(key) holds two different facts: \(first.type) \(first.payload) / \(event.type) \(event.payload)")
                    }
                    byVersion[key] = event
                    seen.insert(event.orderID)
                    if event.type == "PaymentReceived", let id = try? JSONSerialization.jsonObject(with: Data(event.payload.utf8)) as? [String: Any] {
                        payments[event.orderID, default: []].insert(id["payment_id"] as? String ?? "")
                    }
                }
            }
            for order in ledger.placed {
                #expect(seen.contains(order), "\(id)'s file lacks acknowledged order \(order)")
                #expect(ledger.payments[order, default: []].isSubset(of: payments[order, default: []]), "\(id)'s file lacks a payment of \(order)")
            }
        }
        for (origin, byNode) in copies {
            let reference = byNode[origin] ?? []
            #expect(!reference.isEmpty || byNode.values.allSatisfy(\.isEmpty))
            for (node, copy) in byNode where node != origin {
                #expect(copy == reference, "\(node)'s copy of \(origin)'s log differs (\(copy.count) vs \(reference.count) events)")
            }
        }
    }

    @Test func noAcknowledgedCommandIsLostAcrossFiveLeaderKillsAndRestarts() async throws {
        let cluster = try TestCluster(extraArguments: ["--idle-timeout", "1s", "--checkpoint-every", "3"])
        defer { cluster.stopAll(signal: SIGKILL) }
        for id in ["api-1", "api-2", "api-3"] { try await cluster.start(id) }
        let allAlive = ["api-1": "alive", "api-2": "alive", "api-3": "alive"]
        try await cluster.waitForView(allAlive, on: cluster.ids)

        let stop = Locked(false)
        let ledger = Locked(Ledger())
        let clients = Self.startClients(cluster, count: 8, tag: "kill", stop: stop, ledger: ledger)
        for cycle in 0..<5 {
            let victim = cluster.ids[cycle % 3]
            let before = ledger.value.acks
            try await waitFor("traffic before killing \(victim)", timeout: .seconds(30)) { ledger.value.acks >= before + 60 }
            cluster.stop(victim, signal: SIGKILL)
            let others = cluster.ids.filter { $0 != victim }
            let duringOutage = ledger.value.acks
            try await cluster.waitForView([victim: "dead"], on: others)
            try await waitFor("traffic while \(victim) is down", timeout: .seconds(180)) { ledger.value.acks >= duringOutage + 60 }
            try await cluster.start(victim)
            try await cluster.waitForView(allAlive, on: cluster.ids)
        }
        stop.withLock { $0 = true }
        await clients.value
        let final = ledger.value
        #expect(final.placed.count >= 100)
        try await Self.verify(cluster, final)
    }

    @Test func aStoppedAndResumedNodeNeitherDuplicatesNorLosesEvents() async throws {
        let cluster = try TestCluster(extraArguments: ["--idle-timeout", "1s", "--checkpoint-every", "3"])
        defer { cluster.stopAll(signal: SIGKILL) }
        for id in ["api-1", "api-2", "api-3"] { try await cluster.start(id) }
        let allAlive = ["api-1": "alive", "api-2": "alive", "api-3": "alive"]
        try await cluster.waitForView(allAlive, on: cluster.ids)

        let stop = Locked(false)
        let ledger = Locked(Ledger())
        let clients = Self.startClients(cluster, count: 8, tag: "stop", stop: stop, ledger: ledger)
        try await waitFor("traffic", timeout: .seconds(30)) { ledger.value.acks >= 100 }
        cluster.process("api-2").signal(SIGSTOP)
        try await cluster.waitForView(["api-2": "dead"], on: ["api-1", "api-3"])
        let during = ledger.value.acks
        try await waitFor("traffic while api-2 is stopped", timeout: .seconds(180)) { ledger.value.acks >= during + 60 }
        cluster.process("api-2").signal(SIGCONT)
        try await cluster.waitForView(allAlive, on: cluster.ids)
        let after = ledger.value.acks
        try await waitFor("traffic after api-2 resumed", timeout: .seconds(30)) { ledger.value.acks >= after + 60 }
        stop.withLock { $0 = true }
        await clients.value
        try await Self.verify(cluster, ledger.value)
    }
}
