import Foundation
import Testing

/// The balancer in front of real API nodes: it finds them through
/// membership, spreads requests, and hides the SIGKILL of a node from the
/// clients.
@Suite(.serialized) struct BalancerTests {
    static func startBalancer(_ cluster: TestCluster, strategy: String) async throws -> (process: OrderlyProcess, http: String) {
        try await cluster.startRole(["balancer", "--http", "127.0.0.1:0", "--strategy", strategy], log: "balancer-\(strategy).log")
    }

    static func backends(_ balancer: String) async throws -> [String: [String: Any]] {
        let list = try await HTTP.send(.GET, "http://\(balancer)/balancer").body["backends"] as? [[String: Any]] ?? []
        return Dictionary(uniqueKeysWithValues: list.compactMap { item in (item["id"] as? String).map { ($0, item) } })
    }

    @Test func aKilledNodeCostsTheClientsNothingAndAJoiningNodeGetsTraffic() async throws {
        let cluster = try TestCluster()
        defer { cluster.stopAll(signal: SIGKILL) }
        for id in ["api-1", "api-2", "api-3"] { try await cluster.start(id) }
        try await cluster.waitForView(["api-1": "alive", "api-2": "alive", "api-3": "alive"], on: cluster.ids)
        let balancer = try await Self.startBalancer(cluster, strategy: "round-robin")
        defer { balancer.process.stop(signal: SIGKILL) }
        try await waitFor("the balancer to find three healthy backends", timeout: .seconds(20)) {
            let backends = try await Self.backends(balancer.http)
            return backends.count == 3 && backends.values.allSatisfy { $0["state"] as? String == "healthy" }
        }

        // Round-robin: reads spread evenly.
        for _ in 0..<30 {
            #expect(try await HTTP.send(.GET, "http://\(balancer.http)/products/SKU-00001").status == 200)
        }
        let spread = try await Self.backends(balancer.http).mapValues { $0["requests"] as? Int ?? 0 }
        #expect(spread.values.allSatisfy { $0 == 10 }, "\(spread)")

        // Continuous orders and payments through the balancer; api-2 is
        // SIGKILLed mid-stream and restarted later.
        let stop = Locked(false)
        let errors = Locked<[String]>([])
        let acknowledged = Locked<[String: Int]>([:])
        let sent = Locked(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in 0..<8 {
                group.addTask {
                    var index = 0
                    while !stop.value {
                        let order = "b-\(client)-\(index)"
                        index += 1
                        let placed = try await HTTP.send(
                            .POST, "http://\(balancer.http)/orders", #"{"id":"\#(order)","customer":"c","lines":[{"sku":"SKU-00003","qty":1}]}"#,
                            timeout: .seconds(20))
                        guard placed.status == 201 || placed.status == 200, let total = placed.body["total_cents"] as? Int else {
                            errors.withLock { $0.append("\(order) place: \(placed.status) \(placed.body)") }
                            continue
                        }
                        let paid = try await HTTP.send(
                            .POST, "http://\(balancer.http)/orders/\(order)/payments", #"{"id":"p","amount_cents":\#(total)}"#, timeout: .seconds(20))
                        if paid.status == 201 || paid.status == 200 {
                            acknowledged.withLock { $0[order] = total }
                        } else {
                            errors.withLock { $0.append("\(order) pay: \(paid.status) \(paid.body)") }
                        }
                        sent.withLock { $0 += 1 }
                    }
                }
            }
            group.addTask {
                defer { stop.withLock { $0 = true } }
                try await waitFor("some orders before the kill", timeout: .seconds(30)) { sent.value >= 40 }
                cluster.stop("api-2", signal: SIGKILL)
                let before = sent.value
                try await waitFor("orders while api-2 is dead", timeout: .seconds(180)) { sent.value >= before + 80 }
                try await cluster.start("api-2")
                let back = sent.value
                try await waitFor("orders after api-2 is back", timeout: .seconds(180)) { sent.value >= back + 40 }
            }
            try await group.waitForAll()
        }
        #expect(errors.value.isEmpty, "client-visible errors: \(errors.value.prefix(5))")
        for (order, total) in acknowledged.value {
            let reply = try await HTTP.send(.GET, "http://\(balancer.http)/orders/\(order)")
            #expect(reply.status == 200 && reply.body["paid_cents"] as? Int == total, "\(order): \(reply.body)")
        }

        // A node that joins gets traffic without a restart of the balancer.
        try await cluster.start("api-4")
        try await waitFor("the balancer to find api-4", timeout: .seconds(20)) {
            try await Self.backends(balancer.http)["api-4"]?["state"] as? String == "healthy"
        }
        try await waitFor("api-4 to get requests", timeout: .seconds(20)) {
            _ = try await HTTP.send(.GET, "http://\(balancer.http)/products/SKU-00001")
            return try await Self.backends(balancer.http)["api-4"]?["requests"] as? Int ?? 0 > 0
        }
        let stats = try await HTTP.send(.GET, "http://\(balancer.http)/stats/summary")
        #expect(stats.status == 503, "no stats node configured: \(stats.body)")
    }

    /// Reads from many clients at once reach a backend pipelined on shared
    /// connections: every client gets the answer to its own request.
    @Test func concurrentReadsEachGetTheirOwnAnswer() async throws {
        let cluster = try TestCluster()
        defer { cluster.stopAll(signal: SIGKILL) }
        for id in ["api-1", "api-2"] { try await cluster.start(id) }
        try await cluster.waitForView(["api-1": "alive", "api-2": "alive"], on: cluster.ids)
        let balancer = try await Self.startBalancer(cluster, strategy: "round-robin")
        defer { balancer.process.stop(signal: SIGKILL) }
        try await waitFor("the balancer to find two healthy backends", timeout: .seconds(20)) {
            let backends = try await Self.backends(balancer.http)
            return backends.count == 2 && backends.values.allSatisfy { $0["state"] as? String == "healthy" }
        }
        let mismatches = Locked<[String]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in 0..<32 {
                group.addTask {
                    for index in 0..<25 {
                        let sku = String(format: "SKU-%05d", 1 + (client * 25 + index) % 200)
                        let reply = try await HTTP.send(.GET, "http://\(balancer.http)/products/\(sku)")
                        if reply.status != 200 || reply.body["sku"] as? String != sku {
                            mismatches.withLock { $0.append("\(sku): \(reply.status) \(reply.body)") }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(mismatches.value.isEmpty, "\(mismatches.value.prefix(5))")
        let pipelined = try await HTTP.send(.GET, "http://\(balancer.http)/balancer").body["pipelined"] as? Int ?? 0
        #expect(pipelined > 0, "the reads shared backend connections (else this tests nothing new)")
    }

    /// HTTP details of the proxy itself, against a real API node: pipelined
    /// requests answered in order, HTTP/1.0, bad requests, bodies over the
    /// limit (refused before any backend sees them), API errors passed
    /// through unchanged, and its own routes.
    @Test func theProxyKeepsHTTPOrderAndRefusesBadInput() async throws {
        let cluster = try TestCluster()
        defer { cluster.stopAll(signal: SIGKILL) }
        try await cluster.start("api-1")
        let balancer = try await Self.startBalancer(cluster, strategy: "round-robin")
        defer { balancer.process.stop(signal: SIGKILL) }
        try await waitFor("the balancer to find api-1 healthy", timeout: .seconds(20)) {
            try await Self.backends(balancer.http)["api-1"]?["state"] as? String == "healthy"
        }
        let parts = balancer.http.split(separator: ":")
        let host = String(parts[0])
        let port = try #require(Int(parts[1]))

        // Three requests in one write; the answers come back in their order.
        let pipelined = try RawHTTP.exchange(host: host, port: port, """
            GET /products/SKU-00002 HTTP/1.1\r\nHost: x\r\n\r\n\
            GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n\
            GET /products/SKU-00001 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n
            """)
        #expect(pipelined.components(separatedBy: "HTTP/1.1 200 OK").count == 4, "\(pipelined)")
        let second = try #require(pipelined.range(of: "SKU-00002")).lowerBound
        let live = try #require(pipelined.range(of: #""live""#)).lowerBound
        let first = try #require(pipelined.range(of: "SKU-00001")).lowerBound
        #expect(second < live && live < first, "answers in request order: \(pipelined)")

        // The event feed never ends: the balancer sends its clients to a
        // ready API node, with the query as it came.
        let feed = try RawHTTP.exchange(host: host, port: port, "GET /events?types=OrderPaid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(feed.hasPrefix("HTTP/1.1 307"), "\(feed)")
        #expect(feed.contains("Location: http://\(cluster.http("api-1"))/events?types=OrderPaid\r\n"), "\(feed)")
        let posted = try RawHTTP.exchange(host: host, port: port, "POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        #expect(posted.hasPrefix("HTTP/1.1 405") && posted.contains("Allow: GET"), "\(posted)")

        // More pipelined requests than the proxy keeps in flight per
        // connection: it reads on as answers go out, all in order.
        let skus = (1...40).map { String(format: "SKU-%05d", 41 - $0) }
        let many = try RawHTTP.exchange(
            host: host, port: port,
            skus.enumerated().map { "GET /products/\($1) HTTP/1.1\r\nHost: x\r\n" + ($0 == skus.count - 1 ? "Connection: close\r\n" : "") + "\r\n" }.joined())
        #expect(many.components(separatedBy: "HTTP/1.1 200 OK").count == skus.count + 1)
        let found = many.components(separatedBy: #""sku":""#).dropFirst().map { String($0.prefix(9)) }
        #expect(found == skus, "answers in request order")

        // HTTP/1.0 without keep-alive: one answer, then the connection closes
        // (the exchange returns only at end of stream).
        let old = try RawHTTP.exchange(host: host, port: port, "GET /products/SKU-00001 HTTP/1.0\r\n\r\n")
        #expect(old.hasPrefix("HTTP/1.1 200 OK") && old.contains("SKU-00001"), "\(old)")

        // A request that is not HTTP: 400, and the connection closes.
        let garbage = try RawHTTP.exchange(host: host, port: port, "NOT HTTP AT ALL\r\n\r\n")
        #expect(garbage.hasPrefix("HTTP/1.1 400"), "\(garbage)")

        // A body over 1 MiB never reaches a backend.
        let big = String(repeating: "x", count: (1 << 20) + 10)
        let proxiedBefore = try await Self.backends(balancer.http)["api-1"]?["requests"] as? Int
        let refused = try await HTTP.send(
            .POST, "http://\(balancer.http)/orders", #"{"id":"too-big","customer":"\#(big)","lines":[{"sku":"SKU-00001","qty":1}]}"#)
        #expect(refused.status == 413 && (refused.body["error"] as? [String: Any])?["code"] as? String == "body_too_large", "\(refused.body)")
        #expect(try await Self.backends(balancer.http)["api-1"]?["requests"] as? Int == proxiedBefore, "not proxied")
        let missing = try await HTTP.send(.GET, "http://\(balancer.http)/orders/too-big")
        #expect(missing.status == 404, "\(missing.status) \(missing.body)")

        // A client that waits for "100 Continue" before a body over the
        // limit gets the refusal at once, and the connection closes.
        let held = try RawHTTP.exchange(host: host, port: port, "POST /orders HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5000000\r\n\r\n")
        #expect(held.hasPrefix("HTTP/1.1 413") && held.contains("body_too_large"), "\(held)")

        // The API's own refusals pass through as they are.
        let bad = try await HTTP.send(.POST, "http://\(balancer.http)/orders", #"{"id":"bad","customer":"c","lines":[{"sku":"SKU-00001","qty":0}]}"#)
        #expect(bad.status == 400 && (bad.body["error"] as? [String: Any])?["code"] != nil, "\(bad.body)")

        let metrics = try RawHTTP.exchange(host: host, port: port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(metrics.contains("orderly_balancer_requests_total"), "\(metrics.prefix(300))")
    }
}

/// One raw exchange over TCP: sends the bytes, reads until the server closes
/// the connection (or 10 s pass). For what an HTTP client library hides:
/// pipelining, HTTP/1.0, malformed requests.
enum RawHTTP {
    struct Failure: Error, CustomStringConvertible { let description: String }

    static func exchange(host: String, port: Int, _ text: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(errno)") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw Failure(description: "connect: \(errno)") }
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { throw Failure(description: "send: \(errno)") }
            sent += count
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                received += buffer[0..<count]
            } else if count == 0 {
                break
            } else {
                throw Failure(description: "no end of stream within 10 s (errno \(errno)); got \(String(decoding: received, as: UTF8.self))")
            }
        }
        return String(decoding: received, as: UTF8.self)
    }
}

