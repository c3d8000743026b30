import Foundation
import GRDB
import OrderDomain
import TestSupport
import Testing

@testable import EventLog

/// `order_timeline.superseded` marks what the order's fold leaves out
/// (OrderMerge.superseded), so people reading a log with sqlite3 see the
/// order as the nodes do.
@Suite struct TimelineSupersededTests {
    struct Row {
        let origin: String
        let offset: Int64
        let version: Int64
        let term: Int64
        let payload: String
    }

    /// The timeline's (origin, offset) -> superseded for one order's rows,
    /// stored as copies in a log of another node.
    func superseded(_ rows: [Row]) async throws -> [String: Bool] {
        let folder = try TemporaryFolder()
        let log = try EventLog.open(data: folder.path, node: "api-9")
        let path = log.path
        log.close()
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            for row in rows {
                try db.execute(
                    sql: """
                        INSERT INTO events (origin, "offset", order_id, version, type, payload, event_id, recorded_at, term, checksum)
                        VALUES (?, ?, 'o-1', ?, 'PaymentReceived', ?, ?, 0, ?, 0)
                        """,
                    arguments: [row.origin, row.offset, row.version, row.payload, "\(row.origin)-x-\(row.offset)", row.term])
                try db.execute(
                    sql: #"INSERT INTO order_index (order_id, version, origin, "offset") VALUES ('o-1', ?, ?, ?)"#,
                    arguments: [row.version, row.origin, row.offset])
            }
        }
        return try await queue.read { db in
            var marks: [String: Bool] = [:]
            for row in try GRDB.Row.fetchAll(db, sql: #"SELECT origin, "offset", superseded FROM order_timeline WHERE order_id = 'o-1'"#) {
                let origin: String = row[0]
                let offset: Int64 = row[1]
                marks["\(origin)#\(offset)"] = row[2]
            }
            return marks
        }
    }

    let plain = #"{"v":1,"payment_id":"p","amount_cents":1}"#
    func after(_ term: Int64, _ leader: String) -> String {
        #"{"v":1,"payment_id":"p","amount_cents":1,"after_term":\#(term),"after_leader":"\#(leader)"}"#
    }

    /// Seed 80383's shape (see `SupersededTests` in OrderDomainTests): term
    /// 29 went on from term 17's event at version 1, so term 26's event
    /// there is superseded although its term is newer.
    @Test func theNewestTermsChainDecidesBelowWhereItBegan() async throws {
        let marks = try await superseded([
            Row(origin: "api-3", offset: 1, version: 1, term: 17, payload: plain),
            Row(origin: "api-1", offset: 1, version: 1, term: 26, payload: plain),
            Row(origin: "api-3", offset: 2, version: 2, term: 29, payload: after(17, "api-3")),
            Row(origin: "api-3", offset: 3, version: 3, term: 29, payload: plain),
        ])
        #expect(marks == ["api-3#1": false, "api-1#1": true, "api-3#2": false, "api-3#3": false])
    }

    @Test func theChainKeepsTheNewerEventItWentOnFrom() async throws {
        let marks = try await superseded([
            Row(origin: "api-3", offset: 1, version: 1, term: 17, payload: plain),
            Row(origin: "api-1", offset: 1, version: 1, term: 26, payload: plain),
            Row(origin: "api-3", offset: 2, version: 2, term: 29, payload: after(26, "api-1")),
        ])
        #expect(marks == ["api-3#1": true, "api-1#1": false, "api-3#2": false])
    }

    @Test func withoutNamesAnOlderTermAtOrAfterANewerOneIsSuperseded() async throws {
        // Logs written before events named their predecessor's term: the
        // chain stops at the newer term's first event, and the older rule
        // decides there and above.
        let marks = try await superseded([
            Row(origin: "api-1", offset: 1, version: 1, term: 7, payload: plain),
            Row(origin: "api-1", offset: 2, version: 2, term: 7, payload: plain),
            Row(origin: "api-2", offset: 1, version: 2, term: 8, payload: plain),
            Row(origin: "api-1", offset: 3, version: 3, term: 7, payload: plain),
            Row(origin: "api-2", offset: 2, version: 3, term: 8, payload: plain),
        ])
        #expect(marks == ["api-1#1": false, "api-1#2": true, "api-2#1": false, "api-1#3": true, "api-2#2": false])
    }

    /// The view against the fold's own rule (`OrderMerge.superseded`) on
    /// streams of many terms: leaders that go on from a prefix of the
    /// stream (naming the term they went on from), and deposed leaders'
    /// writes at any version.
    @Test(arguments: 0..<60) func theViewMarksWhatTheFoldLeavesOut(seed: Int) async throws {
        var random = SplitMix64(seed: UInt64(seed) &+ 1)
        func below(_ bound: Int) -> Int { Int(random.next() % UInt64(max(1, bound))) }
        var rows: [Row] = []
        var offsets: [String: Int64] = [:]
        var taken: Set<String> = []
        var stream: [(term: Int64, origin: String)] = []  // what the newest leader went on from
        func write(_ version: Int64, _ term: Int64, _ origin: String, after: (term: Int64, origin: String)?) {
            guard taken.insert("\(version) \(term) \(origin)").inserted else { return }
            offsets[origin, default: 0] += 1
            let named = after.flatMap { $0.term == term && $0.origin == origin ? nil : $0 }
            rows.append(Row(origin: origin, offset: offsets[origin]!, version: version, term: term,
                            payload: named.map { self.after($0.term, $0.origin) } ?? plain))
        }
        var number: Int64 = 0
        for _ in 0..<(2 + below(5)) {
            number += 1 + Int64(below(3))
            let leader = "api-\(1 + below(3))"
            let from = below(stream.count + 1)
            stream = Array(stream.prefix(from))
            for _ in 0..<(1 + below(3)) {
                let version = Int64(stream.count + 1)
                write(version, number, leader, after: stream.last)
                stream.append((number, leader))
            }
            // A deposed leader of an older term writes somewhere.
            if below(2) == 0 {
                let version = Int64(1 + below(stream.count + 1))
                let before = version >= 2 && below(2) == 0 ? stream[Int(version) - 2] : nil
                write(version, Int64(1 + below(Int(number))), "api-\(1 + below(3))", after: before)
            }
        }
        let events = rows.map { row -> StreamEvent in
            let stored = try! OrderEvent.decodeStored(typeName: "PaymentReceived", payload: row.payload)
            return StreamEvent(
                version: row.version, eventID: "\(row.origin)-x-\(row.offset)", event: stored.event,
                term: Term(number: row.term, leader: row.origin), after: stored.after)
        }
        let fold = OrderMerge.superseded(base: OrderState(orderID: ClientID("o-1")!), events)
        let marks = try await superseded(rows)
        let view = Set(marks.filter(\.value).keys.map { $0.replacingOccurrences(of: "#", with: "-x-") })
        #expect(view == fold, "rows: \(rows.map { "v\($0.version) t\($0.term)/\($0.origin) \($0.payload)" })")
    }
}
