import AsyncHTTPClient
import Foundation
import NIOCore

/// After a run: every acknowledged order and payment is there with its
/// acknowledged state; each paid order is shipped exactly once, by the
/// warehouse; the stats totals equal the totals of the orders.
public enum Checker {
    public struct Verdict: Sendable {
        public var passed: Bool { violations.isEmpty }
        public var violations: [String] = []
        public var ordersChecked = 0
        public var paymentsChecked = 0
        public var shipped = 0
        public var statsChecked = false
    }

    /// The figures of `/stats/summary` the checker compares.
    public struct StatsFigures: Sendable, Equatable, CustomStringConvertible {
        public var orders: [String: Int64] = [:]
        public var revenueCents: Int64 = 0
        public var description: String {
            "orders " + orders.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ", revenue \(revenueCents) cents"
        }
    }

    static func getJSON(_ client: HTTPClient, _ url: String) async -> (Int, [String: Any])? {
        for _ in 0..<5 {
            if let response = try? await client.execute(HTTPClientRequest(url: url), timeout: .seconds(10)),
                let body = try? await response.body.collect(upTo: 8 << 20)
            {
                let json = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]) ?? [:]
                if response.status.code < 500 { return (Int(response.status.code), json) }
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
        return nil
    }

    public static func stats(_ client: HTTPClient, target: String) async -> StatsFigures? {
        guard let (status, body) = await getJSON(client, target + "/stats/summary"), status == 200 else { return nil }
        var figures = StatsFigures()
        for (key, value) in body["orders"] as? [String: Any] ?? [:] { figures.orders[key] = (value as? NSNumber)?.int64Value ?? 0 }
        figures.revenueCents = (body["revenue_cents"] as? NSNumber)?.int64Value ?? 0
        return figures
    }

    public static func run(
        target: String, orders: [String: AcknowledgedOrder], client: HTTPClient, statsBefore: StatsFigures?, deadline: Duration = .seconds(45),
        progress: @Sendable (String) -> Void = { _ in }
    ) async -> Verdict {
        var verdict = Verdict()
        var finals: [String: [String: Any]] = [:]
        // 1. Acknowledged orders and payments are there, as acknowledged.
        for (id, order) in orders.sorted(by: { $0.key < $1.key }) {
            guard let (status, body) = await getJSON(client, "\(target)/orders/\(id)") else {
                verdict.violations.append("\(id): could not be read")
                continue
            }
            if status == 200 { finals[id] = body }
            guard order.placed else { continue }
            verdict.ordersChecked += 1
            guard status == 200 else {
                verdict.violations.append("\(id): acknowledged placed, but GET answers \(status)")
                continue
            }
            if order.cancelled && body["status"] as? String != "cancelled" {
                verdict.violations.append("\(id): acknowledged cancelled, but it is \(body["status"] ?? "?")")
            }
            let payments = (body["payments"] as? [[String: Any]] ?? []).reduce(into: [String: Int64]()) {
                $0[$1["id"] as? String ?? ""] = ($1["amount_cents"] as? NSNumber)?.int64Value
            }
            for (payment, amount) in order.payments {
                verdict.paymentsChecked += 1
                if payments[payment] != amount {
                    verdict.violations.append("\(id): payment \(payment) of \(amount) cents was acknowledged but is \(payments[payment].map(String.init) ?? "missing")")
                }
            }
        }
        progress("checked \(verdict.ordersChecked) orders and \(verdict.paymentsChecked) payments")

        // 2. Every paid order ships, once, as the warehouse's shipment.
        let end = ContinuousClock.now + deadline
        var waiting = Set(finals.filter { ["paid", "shipped"].contains($0.value["status"] as? String ?? "") }.keys)
        let toShip = waiting.count
        while !waiting.isEmpty && ContinuousClock.now < end {
            for id in waiting.sorted() {
                guard let (status, body) = await getJSON(client, "\(target)/orders/\(id)"), status == 200 else { continue }
                finals[id] = body
                if body["status"] as? String == "shipped" {
                    waiting.remove(id)
                    if body["shipment_id"] as? String != "wms-\(id)" {
                        verdict.violations.append("\(id): shipped as \(body["shipment_id"] ?? "?"), not as the warehouse's wms-\(id)")
                    }
                }
            }
            if !waiting.isEmpty { try? await Task.sleep(for: .milliseconds(500)) }
        }
        verdict.shipped = toShip - waiting.count
        for id in waiting.sorted() { verdict.violations.append("\(id): paid but not shipped within \(deadline)") }
        progress("\(verdict.shipped) of \(toShip) paid orders shipped")

        // 3. The stats node counts what the orders say.
        var expected = statsBefore ?? StatsFigures()
        for body in finals.values {
            guard let status = body["status"] as? String, status != "none" else { continue }
            expected.orders[status, default: 0] += 1
            if status == "paid" || status == "shipped" { expected.revenueCents += (body["total_cents"] as? NSNumber)?.int64Value ?? 0 }
        }
        expected.orders = expected.orders.filter { $0.value != 0 }
        var seen: StatsFigures?
        while ContinuousClock.now < end + .seconds(15) {
            seen = await stats(client, target: target)
            if var seen { seen.orders = seen.orders.filter { $0.value != 0 }; if seen == expected { break } }
            try? await Task.sleep(for: .milliseconds(500))
        }
        verdict.statsChecked = true
        if var seen {
            seen.orders = seen.orders.filter { $0.value != 0 }
            if seen != expected { verdict.violations.append("stats: \(seen); the orders say \(expected)") }
        } else {
            verdict.violations.append("stats: /stats/summary did not answer")
        }
        return verdict
    }
}
