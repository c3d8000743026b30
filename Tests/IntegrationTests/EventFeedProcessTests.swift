import AsyncHTTPClient
import EventLog
import Foundation
import Synchronization
import Testing

/// `GET /events` and `orderly events` against real processes: a reader
/// that is killed and resumed from its last line, and whose node is
/// SIGKILLed under load, gets every event once, each order's versions in
/// order, and every acknowledged order and payment.
@Suite(.serialized) struct EventFeedProcessTests {
    /// Places orders and pays them through every node in turn, keeping
    /// what was acknowledged.
    final class Load: Sendable {
        let placed = Mutex<Set<String>>([])
        /// Acknowledged payment ids (one per order, or more for the
        /// orders paid again).
        let paid = Mutex<[String: String]>([:])
        let stop = Atomic(false)
        /// The last refusal or error the load met, for a failure message.
        let lastFailure = Mutex("none")

        var count: Int { placed.withLock { $0.count } }

        /// Pays each of `orders` again through running nodes: where the
        /// order's leader changed, the new leader writes the next version in
        /// its own log.
        func payAgain(_ orders: [String], tag: String, _ cluster: TestCluster) async {
            for (index, order) in orders.enumerated() {
                let running = cluster.ids.filter { cluster.process($0).process.isRunning }
                let payment = "\(tag)-\(order)"
                for attempt in 0..<20 {
                    let via = cluster.http(running[(index + attempt) % running.count])
                    if let reply = try? await PartitionTests.pay(order, payment, 100, via: via), reply.status == 201 || reply.status == 200 {
                        paid.withLock { $0[payment] = payment }
                        break
                    }
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
        }

        func run(_ cluster: TestCluster) async {
            var index = 0
            while !stop.load(ordering: .relaxed) {
                // Paced: the suite's other clusters share the machine.
                try? await Task.sleep(for: .milliseconds(20))
                index += 1
                let order = "ev-\(index)"
                // Through running nodes (a request to a dead one waits out its
                // timeout: the client retries the connection).
                let running = cluster.ids.filter { cluster.process($0).process.isRunning }
                guard !running.isEmpty else { continue }
                let via = { cluster.http(running[(index + $0) % running.count]) }
                let reply: HTTP.Reply
                do { reply = try await PartitionTests.place(order, via: via(0)) } catch {
                    lastFailure.withLock { $0 = "\(order) via \(via(0)): \(error)" }
                    continue
                }
                guard reply.status == 201 else {
                    lastFailure.withLock { $0 = "\(order) via \(via(0)): \(reply.status) \(reply.body)" }
                    continue
                }
                placed.withLock { _ = $0.insert(order) }
                // Paid through another node: the command is forwarded to the leader.
                if let reply = try? await PartitionTests.pay(order, "pay-\(index)", 100, via: via(1)), reply.status == 201 || reply.status == 200 {
                    paid.withLock { $0["pay-\(index)"] = "pay-\(index)" }
                }
            }
        }
    }

    /// The complete lines a reader printed, parsed.
    static func lines(_ reader: OrderlyProcess) -> [[String: Any]] {
        let text = reader.stdout
        let complete = text.hasSuffix("\n") ? text : String(text[..<(text.lastIndex(of: "\n").map { text.index(after: $0) } ?? text.startIndex)])
        return complete.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    static func padded(_ token: String) -> String {
        var text = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while text.count % 4 != 0 { text += "=" }
        return text
    }

    /// Each event once; an order's version v only after one of its v-1.
    static func checkOnceAndInOrder(_ events: [[String: Any]]) throws {
        var ids = Set<String>()
        var newest: [String: Int] = [:]
        for event in events {
            let id = try #require(event["event_id"] as? String)
            #expect(ids.insert(id).inserted, "\(id) came twice")
            let order = try #require(event["order_id"] as? String)
            let version = try #require(event["version"] as? Int)
            #expect(version <= (newest[order] ?? 0) + 1, "\(order) version \(version) came before version \(version - 1)")
            newest[order] = max(newest[order] ?? 0, version)
        }
    }

    @Test func aReaderGetsEveryEventOnceAndInOrderAcrossItsOwnRestartAndTheKillOfItsNode() async throws {
        let cluster = try await PartitionTests.startThree("consistent")
        defer { cluster.stopAll(signal: SIGKILL) }
        let load = Load()
        let loading = Task { await load.run(cluster) }
        defer { load.stop.store(true, ordering: .relaxed) }
        /// Waits for the load; on a timeout says what it last met and
        /// where each node stood.
        func loadReaches(_ count: Int, _ what: String) async throws {
            do {
                try await waitFor(what, timeout: .seconds(120)) { load.count >= count }
            } catch {
                var tails = ""
                for id in cluster.ids { tails += "\n--- \(id):\n" + cluster.process(id).stderrTail() }
                Issue.record("\(error): \(load.count) placed; the load's last failure: \(load.lastFailure.withLock { $0 })\(tails)")
                throw error
            }
        }
        let targets = cluster.ids.flatMap { ["--target", "http://\(cluster.http($0))"] }

        try await loadReaches(20, "20 orders")
        let first = try OrderlyProcess(["events"] + targets, stderrPath: cluster.folder.file("events-1.log"))
        do {
            try await waitFor("the first reader's 30 events", timeout: .seconds(60)) { Self.lines(first).count >= 30 }
        } catch {
            Issue.record("\(error): \(Self.lines(first).count) events; the reader said: \(first.stderrTail())")
            throw error
        }
        // The reader dies at whatever point it reached; the next one resumes
        // from the last line it printed.
        first.stop(signal: SIGKILL)
        let before = Self.lines(first)
        let resumeAt = try #require(before.last?["position"] as? String)
        let second = try OrderlyProcess(["events", "--after", resumeAt] + targets, stderrPath: cluster.folder.file("events-2.log"))
        defer { second.stop(signal: SIGKILL) }
        do {
            // New events only (it resumed at the end of what was there): as
            // fast as the paced load on a shared machine makes them.
            try await waitFor("the second reader's first 5 events", timeout: .seconds(120)) { Self.lines(second).count >= 5 }
        } catch {
            var tails = ""
            for id in cluster.ids { tails += "\n--- \(id):\n" + String(cluster.process(id).stderrTail().suffix(1500)) }
            Issue.record(
                "\(error): \(Self.lines(second).count) events after \(resumeAt), \(load.count) orders placed; the reader said: \(second.stderrTail())\(tails)")
            throw error
        }

        // The node it reads from (its first target) dies under load; the
        // orders it led move to other leaders, which write their next
        // versions in their own logs.
        let beforeKill = Array(load.placed.withLock { $0 }.sorted().prefix(30))
        let atKill = load.count
        cluster.stop("api-1", signal: SIGKILL)
        try await loadReaches(atKill + 20, "20 orders after the kill")
        await load.payAgain(beforeKill, tag: "late", cluster)
        _ = try await cluster.start("api-1")
        try await cluster.waitForView(["api-1": "alive", "api-2": "alive", "api-3": "alive"], on: cluster.ids, timeout: .seconds(60))
        let atRestart = load.count
        try await loadReaches(atRestart + 20, "20 orders after the restart")
        load.stop.store(true, ordering: .relaxed)
        await loading.value
        await load.payAgain(beforeKill, tag: "again", cluster)

        // Every acknowledged order and payment reaches the reader.
        let placed = load.placed.withLock { $0 }
        let paid = load.paid.withLock { $0 }
        func missing() -> (orders: Set<String>, payments: Set<String>) {
            let events = before + Self.lines(second)
            let placedSeen = Set(events.filter { $0["type"] as? String == "OrderPlaced" }.compactMap { $0["order_id"] as? String })
            let paymentsSeen = Set(events.filter { $0["type"] as? String == "PaymentReceived" }.compactMap {
                ($0["payload"] as? [String: Any])?["payment_id"] as? String
            })
            return (placed.subtracting(placedSeen), Set(paid.values).subtracting(paymentsSeen))
        }
        do {
            try await waitFor("every acknowledged order and payment in the feed", timeout: .seconds(60)) {
                let (orders, payments) = missing()
                return orders.isEmpty && payments.isEmpty
            }
        } catch {
            let (orders, payments) = missing()
            Issue.record("missing orders \(orders.sorted().prefix(10)), payments \(payments.sorted().prefix(10)); reader: \(second.stderrTail())")
        }
        let events = before + Self.lines(second)
        #expect(Self.lines(second).count > 0 && !second.stderrTail().isEmpty, "the reader reconnected (it says so on stderr)")

        try Self.checkOnceAndInOrder(events)

        // A reader from the beginning, reading every log at once, and one
        // resumed from the middle: the same events, in order again.
        let survivors = cluster.ids.filter { $0 != "api-1" }.flatMap { ["--target", "http://\(cluster.http($0))"] }
        let fresh = try await OrderlyBinary.run(["events", "--count", "\(events.count)"] + survivors, timeout: .seconds(60))
        let all = fresh.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(Set(all.compactMap { $0["event_id"] as? String }) == Set(events.compactMap { $0["event_id"] as? String }))
        try Self.checkOnceAndInOrder(all)
        let middle = try #require(before[10]["position"] as? String)
        let covered = Dictionary(
            uniqueKeysWithValues: try #require(String(data: Data(base64Encoded: Self.padded(middle)) ?? Data(), encoding: .utf8)).split(separator: ",").map {
                (String($0.split(separator: ":")[0]), Int($0.split(separator: ":")[1])!)
            })
        let rest = all.filter { ($0["offset"] as? Int ?? 0) > covered[$0["origin"] as? String ?? "", default: 0] }
        let resumed = try await OrderlyBinary.run(["events", "--after", middle, "--count", "\(rest.count)"] + survivors, timeout: .seconds(60))
        let again = resumed.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(again.compactMap { $0["event_id"] as? String }.sorted() == rest.compactMap { $0["event_id"] as? String }.sorted())
        try Self.checkOnceAndInOrder(Array(all.filter { ($0["offset"] as? Int ?? 0) <= covered[$0["origin"] as? String ?? "", default: 0] }) + again)

        // An idle feed (an order nobody writes) sends keep-alive comments.
        let idle = try await HTTPClient.shared.execute(
            HTTPClientRequest(url: "http://\(cluster.http("api-2"))/events?order=nobody-writes-this"), timeout: .seconds(30))
        #expect(idle.headers.first(name: "Content-Type") == "text/event-stream")
        var received = ""
        for try await chunk in idle.body {
            received += String(buffer: chunk)
            if received.contains(": keep-alive\n\n") { break }
        }
        #expect(received.contains(": keep-alive\n\n") && !received.contains("data:"), "\(received)")

        // Some orders' streams run over several origins (their leader
        // changed): the feed waited for each version before the next.
        let origins = Dictionary(grouping: events, by: { $0["order_id"] as? String ?? "" }).mapValues { Set($0.compactMap { $0["origin"] as? String }) }
        #expect(origins.values.filter { $0.count > 1 }.count > 0, "no order changed leader: the test shows nothing of the ordering across logs")
        // Each is an event the logs hold, as they hold it.
        var held: [String: (String, Int, String)] = [:]
        for node in cluster.ids {
            for record in try await cluster.log(node).scan(origin: nil, fromOffset: 1, limit: 1_000_000) {
                held[record.eventID] = (record.orderID, Int(record.version), record.type)
            }
        }
        for event in events {
            let id = event["event_id"] as? String ?? ""
            let expected = held[id]
            #expect(
                expected.map { $0 == (event["order_id"] as? String ?? "", event["version"] as? Int ?? 0, event["type"] as? String ?? "") } == true,
                "\(id) is not in any log as the feed gave it")
        }
    }

    /// A feed never ends by itself; a node told to stop ends it (the client
    /// goes on elsewhere) rather than wait for it.
    @Test func aNodeStopsOnSIGTERMWithAFeedClientConnected() async throws {
        let folder = try TemporaryFolder()
        let node = try OrderlyProcess(
            ["node", "--id", "solo", "--data", folder.path, "--http", "127.0.0.1:0"], stderrPath: folder.file("node.log"))
        defer { node.stop(signal: SIGKILL) }
        let http = try await node.waitReady()
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://\(http)/events"), timeout: .seconds(120))
        #expect(response.status == .ok)
        var body = response.body.makeAsyncIterator()
        let first = try await body.next()
        #expect(first.map { String(buffer: $0) }?.hasPrefix(": orderly event feed") == true)
        node.signal(SIGTERM)
        try await waitFor("the node to stop", timeout: .seconds(60)) { !node.process.isRunning }
        #expect(node.process.terminationStatus == 0, "\(node.stderrTail())")
        // The stream ended (or the connection went) with the node.
        do {
            while try await body.next() != nil {}
        } catch {}
    }
}
