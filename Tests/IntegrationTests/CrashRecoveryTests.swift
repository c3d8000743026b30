import AsyncHTTPClient
import EventLog
import Foundation
import Synchronization
import Testing

/// Real `orderly node` processes on port 0, in temp folders.
@Suite(.serialized) struct CrashRecoveryTests {
    static let sku = "SKU-00001"

    /// What the client was told: the order exists, and these payments were applied.
    struct Acknowledged: Sendable {
        var placed: Set<String> = []
        var payments: [String: Set<String>] = [:]
    }

    @Test func everyAcknowledgedCommandSurvivesSIGKILL() async throws {
        let folder = try TemporaryFolder()
        let arguments = ["node", "--id", "api-1", "--data", folder.path, "--http", "127.0.0.1:0", "--idle-timeout", "200ms", "--checkpoint-every", "3"]
        let first = try OrderlyProcess(arguments, stderrPath: folder.file("first.log"))
        let http = try await first.waitReady()
        let acknowledged = Locked(Acknowledged())
        let acks = Locked(0)
        let killed = Locked(false)
        let lastFailure = Locked("none")

        // Clients place orders and pay them in two parts, without pause,
        // until the node dies under them. Before the kill a failed command
        // is sent again (commands are idempotent by id; a repeat answers
        // 200), so a slow machine cannot make the clients give up early.
        @Sendable func send(_ url: String, _ body: String) async -> Bool {
            while !killed.value {
                do {
                    let reply = try await HTTP.send(.POST, url, body)
                    if reply.status == 201 || reply.status == 200 { return true }
                    lastFailure.withLock { $0 = "status \(reply.status): \(reply.body)" }
                } catch {
                    lastFailure.withLock { $0 = "\(error)" }
                }
                // A pause before the retry, so that a node that refuses
                // connections is not hammered (not a synchronisation).
                try? await Task.sleep(for: .milliseconds(20))
            }
            return false
        }
        let clients = Task {
            await withTaskGroup(of: Void.self) { group in
                for client in 0..<6 {
                    group.addTask {
                        for index in 0..<100_000 {
                            let order = "o-\(client)-\(index)"
                            guard await send("http://\(http)/orders", #"{"id":"\#(order)","customer":"c\#(client)","lines":[{"sku":"\#(Self.sku)","qty":2}]}"#)
                            else { return }
                            acknowledged.withLock { _ = $0.placed.insert(order) }
                            acks.withLock { $0 += 1 }
                            for part in 0..<2 {
                                let payment = "p-\(part)"
                                guard await send("http://\(http)/orders/\(order)/payments", #"{"id":"\#(payment)","amount_cents":1}"#)
                                else { return }
                                acknowledged.withLock { _ = $0.payments[order, default: []].insert(payment) }
                                acks.withLock { $0 += 1 }
                            }
                        }
                    }
                }
            }
        }
        do {
            _ = try await waitUntil("300 acknowledged commands", timeout: .seconds(120)) { acks.value >= 300 ? true : nil }
        } catch {
            killed.withLock { $0 = true }
            first.stop(signal: SIGKILL)
            await clients.value
            Issue.record("\(error); \(acks.value) acknowledged; the clients' last failure: \(lastFailure.value); stderr: \(first.stderrTail())")
            return
        }
        killed.withLock { $0 = true }
        first.stop(signal: SIGKILL)
        await clients.value

        let second = try OrderlyProcess(arguments, stderrPath: folder.file("second.log"))
        defer { second.stop() }
        let restarted = try await second.waitReady()
        let expected = acknowledged.value
        #expect(expected.placed.count >= 100)
        for order in expected.placed.sorted() {
            let reply = try await HTTP.send(.GET, "http://\(restarted)/orders/\(order)")
            #expect(reply.status == 200, "acknowledged order \(order) is served after the crash")
            let payments = (reply.body["payments"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            let missing = expected.payments[order, default: []].subtracting(payments)
            #expect(missing.isEmpty, "acknowledged payments \(missing) of \(order) are served after the crash")
            #expect(reply.body["total_cents"] as? Int != nil)
        }
    }

    @Test func sigtermStopsGracefullyAndCheckpointsActiveOrders() async throws {
        let folder = try TemporaryFolder()
        let node = try OrderlyProcess(
            ["node", "--id", "api-1", "--data", folder.path, "--http", "127.0.0.1:0"], stderrPath: folder.file("node.log"))
        let http = try await node.waitReady()
        let placed = try await HTTP.send(.POST, "http://\(http)/orders", #"{"id":"g-1","customer":"c","lines":[{"sku":"\#(Self.sku)","qty":1}]}"#)
        #expect(placed.status == 201)
        node.stop(signal: SIGTERM)
        #expect(node.process.terminationStatus == 0, "clean exit; stderr: \(node.stderrTail())")

        let log = try EventLog.openReadOnly(path: EventLog.path(data: folder.path, node: "api-1"))
        #expect(try await log.checkpoint(orderID: "g-1")?.version == 1, "the active order was checkpointed on the way out")
        #expect(try await log.events(orderID: "g-1").map(\.type) == ["OrderPlaced"])
    }

    @Test func inspectPrintsAnOrderTimelineFromTheFiles() async throws {
        let folder = try TemporaryFolder()
        let node = try OrderlyProcess(
            ["node", "--id", "api-1", "--data", folder.path, "--http", "127.0.0.1:0"], stderrPath: folder.file("node.log"))
        let http = try await node.waitReady()
        _ = try await HTTP.send(.POST, "http://\(http)/orders/i-1/payments", #"{"id":"early","amount_cents":5}"#)
        _ = try await HTTP.send(.POST, "http://\(http)/orders", #"{"id":"i-1","customer":"c","lines":[{"sku":"\#(Self.sku)","qty":1}]}"#)

        // While the node runs: inspect opens the file read-only.
        let order = try await run(["inspect", "order", "i-1", "--data", folder.path])
        #expect(order.status == 0)
        #expect(order.stdout.contains("PaymentReceived"))
        #expect(order.stdout.contains("OrderPlaced"))
        #expect(order.stdout.contains("PaymentApplied"))
        let log = try await run(["inspect", "log", "--data", folder.path, "--from", "2", "--limit", "1"])
        #expect(log.status == 0)
        #expect(log.stdout.contains("api-1#2 "))
        #expect(!log.stdout.contains("api-1#1 "))
        node.stop()

        let unknown = try await run(["inspect", "order", "nope", "--data", folder.path])
        #expect(unknown.status != 0)
    }

    @Test func everyCommandHasHelpAndBadArgumentsAreRefused() async throws {
        let commands: [[String]] = [
            [], ["demo"], ["node"], ["balancer"], ["wms"], ["simulate"], ["stats"], ["stats", "rebuild"],
            ["cluster"], ["cluster", "up"], ["cluster", "status"], ["cluster", "down"], ["cluster", "kill"], ["cluster", "start"],
            ["inspect"], ["inspect", "order"], ["inspect", "log"], ["bench"], ["bench", "append"], ["bench", "recovery"],
            ["bench", "forward"], ["bench", "ring"], ["bench", "replicate"], ["bench", "rebuild"],
        ]
        for command in commands {
            let help = try await run(command + ["--help"])
            #expect(help.status == 0, "\(command) --help")
            #expect(help.stdout.contains("USAGE"), "\(command) --help")
            // Defaults read as they would be typed, not as Swift values.
            #expect(!help.stdout.contains("Argument("), "\(command) --help: \(help.stdout)")
        }
        let node = try await run(["node", "--help"]).stdout
        #expect(node.contains("(default: 750ms)") && node.contains("(default: 1.5s)") && node.contains("(default: 10s)"), "\(node)")
        let folder = try TemporaryFolder()
        for bad in [
            ["node", "--id", "bad id", "--data", folder.path],
            ["node", "--id", "a", "--data", folder.path, "--http", "nohost"],
            ["node", "--id", "a", "--data", folder.path, "--http", "127.0.0.1:99999"],
            ["node", "--id", "a", "--data", folder.path, "--idle-timeout", "soon"],
            ["node", "--id", "a", "--data", folder.path, "--event-loops", "0"],
            ["node", "--id", "a", "--data", folder.path, "--seeds", "127.0.0.1:7000"],
            ["node", "--id", "a", "--data", folder.path, "--peer", "127.0.0.1:0", "--seeds", "nohost", "--insecure"],
            ["node", "--id", "a", "--data", folder.path, "--peer", "127.0.0.1:0", "--replication-factor", "0", "--insecure"],
        ] {
            let result = try await run(bad)
            #expect(result.status != 0, "\(bad)")
            #expect(result.stderr.contains("Error"), "\(bad): \(result.stderr)")
        }
    }

    /// Runs `orderly` to completion (at most a minute).
    func run(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await OrderlyBinary.run(arguments, timeout: .seconds(60))
    }
}
