import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import OrderDomain
import Synchronization

/// Runs one phase of open-loop load: customers arrive at the configured rate
/// whatever the answers take, each places an order, pays (sometimes before
/// ordering, sometimes twice), checks its status, or cancels. Failures are
/// injected at their times through `inject`.
public final class Simulation: Sendable {
    public struct Outcome: Sendable {
        public var records: [RequestRecord]
        public var orders: [String: AcknowledgedOrder]
        public var failures: [(event: FailureEvent, atMs: Int64, error: String?)]
        public var durationMs: Int64
    }

    let config: SimulationConfig
    let inject: @Sendable (FailureEvent) async throws -> Void
    let progress: @Sendable (String) -> Void
    let client: HTTPClient
    private let records = Mutex<[RequestRecord]>([])
    private let failureLog = Mutex<[(FailureEvent, Int64, String?)]>([])
    private let orders = Mutex<[String: AcknowledgedOrder]>([:])
    private let skus: [(sku: String, priceCents: Int64)]

    public init(
        config: SimulationConfig, client: HTTPClient, inject: @escaping @Sendable (FailureEvent) async throws -> Void = { _ in },
        progress: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.config = config
        self.client = client
        self.inject = inject
        self.progress = progress
        // Products with plenty of stock, so the warehouse ships every order.
        skus = Catalog.standard.all.filter { $0.stock >= 300 }.prefix(40).map { ($0.sku, $0.priceCents) }
    }

    public func run() async -> Outcome {
        let start = ContinuousClock.now
        let customers = Int((Double(config.durationMs) / 1000 * config.rate).rounded(.down))
        await withTaskGroup(of: Void.self) { group in
            for event in config.failures {
                group.addTask { [self] in
                    try? await Task.sleep(until: start + .milliseconds(event.atMs))
                    var failure: String?
                    do { try await inject(event) } catch { failure = "\(error)" }
                    let at = (ContinuousClock.now - start).totalMilliseconds
                    failureLog.withLock { $0.append((event, at, failure)) }
                }
            }
            group.addTask { [self] in
                var lastReport = Int64(0)
                while (ContinuousClock.now - start).totalMilliseconds < config.durationMs {
                    try? await Task.sleep(for: .milliseconds(250))
                    let now = (ContinuousClock.now - start).totalMilliseconds
                    if now - lastReport >= 1000 {
                        lastReport = now
                        let (count, errors) = records.withLock { ($0.count, $0.filter { !$0.ok }.count) }
                        progress("[\(config.phase)] \(String(format: "%.0f", Double(min(now, config.durationMs)) / 1000))/\(config.durationMs / 1000)s  requests \(count)  errors \(errors)")
                    }
                }
            }
            var random = SplitMix64(seed: config.seed)
            for index in 0..<customers {
                let intended = Int64(Double(index) * 1000 / config.rate)
                let draw = (random.next() % 1000, random.next() % 1000, random.next() % 1000, random.next() % UInt64(max(1, skus.count)))
                try? await Task.sleep(until: start + .milliseconds(intended))
                group.addTask { [self] in
                    await customer(index, intendedMs: intended, draw: draw, start: start)
                }
            }
        }
        let failures = failureLog.withLock { $0 }.map { (event: $0.0, atMs: $0.1, error: $0.2) }
        return Outcome(
            records: records.withLock { $0 }, orders: orders.withLock { $0 }, failures: failures,
            durationMs: (ContinuousClock.now - start).totalMilliseconds)
    }

    private func customer(_ index: Int, intendedMs: Int64, draw: (UInt64, UInt64, UInt64, UInt64), start: ContinuousClock.Instant) async {
        let orderID = "\(config.runID)-\(index)"
        let product = skus[Int(draw.3) % skus.count]
        let payFirst = Double(draw.0) / 1000 < config.payFirstShare
        let payTwice = Double(draw.1) / 1000 < config.duplicatePaymentShare
        let cancel = !payFirst && Double(draw.2) / 1000 < config.cancelShare
        let total = product.priceCents
        orders.withLock { $0[orderID] = AcknowledgedOrder(orderID: orderID) }
        var intended = intendedMs
        func step(_ operation: String, _ method: HTTPMethod, _ path: String, _ body: String?) async -> (status: Int, ok: Bool) {
            let (status, attempts, error) = await send(method, path, body)
            let end = (ContinuousClock.now - start).totalMilliseconds
            records.withLock {
                $0.append(RequestRecord(
                    phase: config.phase, operation: operation, orderID: orderID, intendedMs: intended, endMs: end, status: status, attempts: attempts,
                    error: error))
            }
            intended = end
            return (status, error == nil)
        }
        let payment = #"{"id":"pay-1","amount_cents":\#(total)}"#
        if payFirst {
            let held = await step("pay_early", .POST, "/orders/\(orderID)/payments", payment)
            if held.ok { orders.withLock { $0[orderID]?.payments["pay-1"] = total } }
        }
        let placed = await step("place", .POST, "/orders", #"{"id":"\#(orderID)","customer":"c\#(index % 97)","lines":[{"sku":"\#(product.sku)","qty":1}]}"#)
        guard placed.ok else { return }
        orders.withLock {
            $0[orderID]?.placed = true
            $0[orderID]?.totalCents = total
        }
        if cancel {
            if await step("cancel", .POST, "/orders/\(orderID)/cancel", #"{"reason":"changed mind"}"#).ok {
                orders.withLock { $0[orderID]?.cancelled = true }
            }
        } else if !payFirst {
            if await step("pay", .POST, "/orders/\(orderID)/payments", payment).ok {
                orders.withLock { $0[orderID]?.payments["pay-1"] = total }
            }
            if payTwice { _ = await step("pay_again", .POST, "/orders/\(orderID)/payments", payment) }
        }
        _ = await step("status", .GET, "/orders/\(orderID)", nil)
    }

    /// Sends with retries (exponential backoff) on connection errors and
    /// 5xx; a 4xx is an answer, and an error.
    private func send(_ method: HTTPMethod, _ path: String, _ body: String?) async -> (status: Int, attempts: Int, error: String?) {
        var pause = Duration.milliseconds(50)
        var lastError = "connection"
        var lastStatus = 0
        for attempt in 1...5 {
            var request = HTTPClientRequest(url: config.target + path)
            request.method = method
            if let body {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(string: body))
            }
            do {
                let response = try await client.execute(request, timeout: .seconds(15))
                _ = try await response.body.collect(upTo: 1 << 20)
                let status = Int(response.status.code)
                lastStatus = status
                if status < 400 { return (status, attempt, nil) }
                if status < 500 { return (status, attempt, "http_4xx") }
                lastError = "http_5xx"
            } catch {
                lastError = "\(error)".contains("imeout") ? "timeout" : "connection"
            }
            if attempt < 5 {
                try? await Task.sleep(for: pause)
                pause *= 2
            }
        }
        return (lastStatus, 5, lastError)
    }
}

extension Duration {
    var totalMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
