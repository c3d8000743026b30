import EventLog
import Foundation
import LogStorage
import OrderDomain
import Testing

@testable import Node

/// Logs written by an earlier release must fold the same way with today's
/// code: `Tests/Fixtures/log-v1/` holds a log file written by this code
/// (every event type, every refund reason, held payments, a conflict) and
/// the state each order folded to when it was written, as checkpoint JSON. A change to an
/// event's shape, its decoding, the fold or the schema migrations that
/// breaks them fails here. Never regenerate the fixture to make this pass:
/// add an upcaster, or a new fixture beside it for the new shape.
/// (`ORDERLY_WRITE_FIXTURES=1 swift test --filter EventCompatibilityTests`
/// writes it, once, when it is missing.)
@Suite struct EventCompatibilityTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/log-v1")
    static let logFile = folder.appendingPathComponent("log.sqlite").path
    static let statesFile = folder.appendingPathComponent("states.json").path

    /// The orders of the fixture, as the events today's code writes.
    static func fixtureOrders() -> [(order: String, events: [OrderEvent])] {
        let sku = Catalog.standard.page(after: nil, limit: 2).products
        let (a, b) = (sku[0], sku[1])
        let two = OrderLine(sku: a.sku, qty: 2, unitPriceCents: a.priceCents)
        let one = OrderLine(sku: b.sku, qty: 1, unitPriceCents: b.priceCents)
        let total1 = two.unitPriceCents * 2 + one.unitPriceCents
        let total2 = one.unitPriceCents
        let p = { (raw: String) in ClientID(raw)! }
        return [
            // Placed, paid, shipped.
            ("fx-1", [
                .orderPlaced(customer: "c-1", lines: [two, one], totalCents: total1),
                .paymentReceived(paymentID: p("p-1"), amountCents: total1, heldUntilMs: nil),
                .paymentApplied(paymentID: p("p-1"), amountCents: total1),
                .orderPaid(paidCents: total1),
                .orderShipped(shipmentID: p("wms-fx-1")),
            ]),
            // Paid before it was placed (held), then cancelled with a reason.
            ("fx-2", [
                .paymentReceived(paymentID: p("p-2"), amountCents: total2, heldUntilMs: 1_767_225_660_000),
                .orderPlaced(customer: "c-2", lines: [one], totalCents: total2),
                .paymentApplied(paymentID: p("p-2"), amountCents: total2),
                .orderPaid(paidCents: total2),
                .orderCancelled(reason: "changed my mind"),
                .paymentRefunded(paymentID: p("p-2"), amountCents: total2, reason: .orderCancelled),
            ]),
            // Paid twice: the second payment is refunded as an overpayment.
            ("fx-3", [
                .orderPlaced(customer: "c-3", lines: [one], totalCents: total2),
                .paymentReceived(paymentID: p("p-3a"), amountCents: total2, heldUntilMs: nil),
                .paymentApplied(paymentID: p("p-3a"), amountCents: total2),
                .orderPaid(paidCents: total2),
                .paymentReceived(paymentID: p("p-3b"), amountCents: 500, heldUntilMs: nil),
                .paymentRefunded(paymentID: p("p-3b"), amountCents: 500, reason: .overpayment),
            ]),
            // A held payment whose order never came.
            ("fx-4", [
                .paymentReceived(paymentID: p("p-4"), amountCents: 700, heldUntilMs: 1_767_225_700_000),
                .paymentRefunded(paymentID: p("p-4"), amountCents: 700, reason: .orderNeverArrived),
            ]),
            // Cancelled without a reason; a payment from the other side of
            // a partition, recorded as a conflict and sent back.
            ("fx-5", [
                .orderPlaced(customer: "c-5", lines: [two], totalCents: two.unitPriceCents * 2),
                .orderCancelled(reason: nil),
                .paymentReceived(paymentID: p("p-5"), amountCents: two.unitPriceCents * 2, heldUntilMs: nil),
                .conflictRecorded(code: "paid_after_cancel", detail: "payment p-5 arrived after the cancel"),
                .paymentRefunded(paymentID: p("p-5"), amountCents: two.unitPriceCents * 2, reason: .reconciled),
            ]),
        ]
    }

    /// What each order of a log folds to.
    static func foldedStates(of log: EventLog) async throws -> [String: OrderState] {
        var states: [String: OrderState] = [:]
        for (order, _) in fixtureOrders() {
            let records = try await log.events(orderID: order)
            let stream = try records.map { try $0.streamEvent() }
            // The byte decoder (rebuilds read rows with it) reads them alike.
            for (record, decoded) in zip(records, stream) {
                var type = record.type
                var payload = record.payload
                let fromBytes = try type.withUTF8 { type in
                    try payload.withUTF8 { payload in try OrderEvent.decode(typeName: UnsafeRawBufferPointer(type), payload: UnsafeRawBufferPointer(payload)) }
                }
                #expect(fromBytes == decoded.event, "\(record.eventID): the byte decoder reads another event")
            }
            states[order] = OrderMerge.fold(OrderState(orderID: ClientID(order)!), stream)
        }
        return states
    }

    static func writeFixture() async throws {
        let scratch = NSTemporaryDirectory() + "orderly-fixture-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let log = try EventLog.open(data: scratch, node: "api-1")
        for (order, events) in fixtureOrders() {
            let new = events.enumerated().map { index, event in
                NewEvent(orderID: order, version: Int64(index + 1), type: event.typeName, payload: event.payloadJSON(), term: 1)
            }
            _ = try await log.append(AppendRequest(events: new))
        }
        let states = try await foldedStates(of: log)
        log.close()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        _ = try Snapshot.copy(EventLog.path(data: scratch, node: "api-1"), to: logFile)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try encoder.encode(states.mapValues { $0.snapshotJSON() }).write(to: URL(fileURLWithPath: statesFile))
    }

    @Test func aLogWrittenByTheFirstReleaseFoldsToTheStatesRecordedBesideIt() async throws {
        if !FileManager.default.fileExists(atPath: Self.logFile), ProcessInfo.processInfo.environment["ORDERLY_WRITE_FIXTURES"] == "1" {
            try await Self.writeFixture()
        }
        try #require(FileManager.default.fileExists(atPath: Self.logFile), "the fixture \(Self.logFile) is missing")
        let recorded = try JSONDecoder().decode([String: String].self, from: Data(contentsOf: URL(fileURLWithPath: Self.statesFile)))
        // Opened as a node opens its log (migrations run), on a copy.
        let scratch = NSTemporaryDirectory() + "orderly-fixture-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try FileManager.default.createDirectory(atPath: (EventLog.path(data: scratch, node: "api-1") as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.logFile, toPath: EventLog.path(data: scratch, node: "api-1"))
        let log = try EventLog.open(data: scratch, node: "api-1")
        let states = try await Self.foldedStates(of: log)
        log.close()
        #expect(Set(recorded.keys) == Set(Self.fixtureOrders().map(\.order)))
        // The states were recorded as checkpoints (snapshot JSON): read back
        // as a node reads an old checkpoint, they must equal today's fold.
        for (order, snapshot) in recorded.sorted(by: { $0.key < $1.key }) {
            let then = try OrderState.fromSnapshot(snapshot)
            // Those checkpoints kept no term of their last event: it reads
            // as unknown (`headTerm` nil), whatever today's fold knows.
            #expect(then.headTerm == nil)
            var now = states[order]
            now?.headTerm = nil
            #expect(now == then, "\(order) folds to another state than when the fixture was written: \(String(describing: states[order]?.snapshotJSON()))")
        }
    }
}
