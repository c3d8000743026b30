import EventLog
import Foundation
import OrderDomain

extension BenchSupport {
    /// Orders of 10 valid events each: placed, eight payments, paid.
    static func fillLog(data: String, events: Int) async throws {
        try? FileManager.default.removeItem(atPath: data)
        var options = EventLogOptions()
        options.durability = .relaxed
        let log = try EventLog.open(data: data, node: "bench", options: options)
        defer { log.close() }
        let orders = events / 10
        let product = Catalog.standard.product(sku: Catalog.standard.page(after: nil, limit: 1).products[0].sku)!
        let line = OrderLine(sku: product.sku, qty: 1, unitPriceCents: product.priceCents)
        let appenders = 8
        try await withThrowingTaskGroup(of: Void.self) { group in
            for appender in 0..<appenders {
                group.addTask {
                    var batch: [NewEvent] = []
                    for order in stride(from: appender, to: orders, by: appenders) {
                        let id = "bench-o-\(order)"
                        var stream: [OrderEvent] = [.orderPlaced(customer: "c-\(order % 997)", lines: [line], totalCents: product.priceCents)]
                        // Paid in 8 parts, the last one making the order paid.
                        let part = product.priceCents / 8
                        for payment in 1...8 {
                            let amount = payment < 8 ? part : product.priceCents - 7 * part
                            stream.append(.paymentReceived(paymentID: ClientID("p\(payment)")!, amountCents: amount, heldUntilMs: nil))
                        }
                        stream.append(.orderPaid(paidCents: product.priceCents))
                        for (index, event) in stream.enumerated() {
                            batch.append(NewEvent(orderID: id, version: Int64(index + 1), type: event.typeName, payload: event.payloadJSON()))
                        }
                        if batch.count >= 1000 {
                            _ = try await log.append(AppendRequest(events: batch))
                            batch.removeAll(keepingCapacity: true)
                        }
                    }
                    if !batch.isEmpty { _ = try await log.append(AppendRequest(events: batch)) }
                }
            }
            try await group.waitForAll()
        }
    }

}
