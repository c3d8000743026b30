import EventLog
import Foundation
import Logging
import OrderDomain
import Replication
import TestSupport
import Testing

@testable import Node

/// The feed of a node without peers, on a real SQLite log: every event in
/// order, positions that resume exactly, filters, back-pressure.
@Suite struct EventFeedTests {
    func collect(_ feed: EventFeed, count: Int) async throws -> [FeedItem] {
        var items: [FeedItem] = []
        let deadline = ContinuousClock.now + .seconds(20)
        while items.count < count {
            guard ContinuousClock.now < deadline else { throw TestFailure("the feed gave \(items.count) of \(count) events") }
            guard let more = await feed.next(max: 50, wait: .milliseconds(200)) else { break }
            items += more
        }
        return items
    }

    @Test func aStandaloneFeedGivesEveryEventOnceAndResumesExactly() async throws {
        let folder = try TemporaryFolder()
        let log = try EventLog.open(data: folder.path, node: "api-1")
        let engine = OrderEngine(log: log, catalog: .standard, config: EngineConfig(nodeID: "api-1"), clock: SystemClock())
        let feeds = FeedSource.standalone(log: log, nodeID: "api-1", logger: Logger(label: "test"))
        for n in 0..<5 {
            _ = try await engine.execute(id("o-\(n)"), .place(customer: "c", lines: [OrderLineRequest(sku: someSKU, qty: 1)]))
            _ = try await engine.execute(id("o-\(n)"), .pay(paymentID: id("p-\(n)"), amountCents: 1))
        }
        let feed = feeds.open(from: FeedPosition())
        let first = try await collect(feed, count: 10)
        #expect(first.map(\.event.offset) == Array(1...10))
        #expect(Set(first.map(\.event.orderID)) == Set((0..<5).map { "o-\($0)" }))
        // New events reach a feed that waits for them.
        _ = try await engine.execute(id("o-new"), .place(customer: "c", lines: [OrderLineRequest(sku: someSKU, qty: 1)]))
        let live = try await collect(feed, count: 1)
        #expect(live.map(\.event.orderID) == ["o-new"])
        await feed.close()
        #expect(await feed.next(max: 10, wait: .seconds(1)) == nil, "a closed feed ends")

        // Resumed after the 4th event: exactly the 5th onwards.
        let resumed = feeds.open(from: first[3].position)
        let rest = try await collect(resumed, count: 7)
        await resumed.close()
        #expect(rest.map(\.event.offset) == Array(5...11))

        // Filters: one order, some types; the position still moves past the rest.
        let filtered = feeds.open(from: FeedPosition()) { $0.orderID == "o-2" && $0.type == "OrderPlaced" }
        let only = try await collect(filtered, count: 1)
        await filtered.close()
        #expect(only.map(\.event.orderID) == ["o-2"])
        await engine.shutdown()
    }

    @Test func aSlowClientIsPacedNotBufferedWithoutEnd() async throws {
        let folder = try TemporaryFolder()
        let log = try EventLog.open(data: folder.path, node: "api-1")
        let engine = OrderEngine(log: log, catalog: .standard, config: EngineConfig(nodeID: "api-1"), clock: SystemClock())
        let feeds = FeedSource.standalone(log: log, nodeID: "api-1", logger: Logger(label: "test"))
        for n in 0..<40 {
            _ = try await engine.execute(id("o-\(n)"), .place(customer: "c", lines: [OrderLineRequest(sku: someSKU, qty: 1)]))
        }
        let feed = feeds.open(from: FeedPosition(), bufferLimit: 5, readBatch: 10)
        // Nobody reads: the buffer fills to its limit and the reading stops
        // there (what it read waits in its one batch).
        try await waitFor("a full buffer") { await feed.buffered == 5 }
        #expect(await feed.buffered == 5)
        // The rest of the one batch read waits (one of them perhaps in the
        // hand that waits for room); no more is read.
        #expect((4...5).contains(await feed.held))
        let all = try await collect(feed, count: 40)
        await feed.close()
        #expect(all.map(\.event.offset) == Array(1...40))

        // A client that takes a few at a time and never empties the buffer:
        // what it took does not stay behind.
        let nibbled = feeds.open(from: FeedPosition(), bufferLimit: 10, readBatch: 10)
        var taken: [FeedItem] = []
        while taken.count < 40 {
            guard let some = await nibbled.next(max: 3, wait: .seconds(5)), !some.isEmpty else { break }
            taken += some
            #expect(await nibbled.stored <= 20, "the buffer keeps what went out")
        }
        await nibbled.close()
        #expect(taken.map(\.event.offset) == Array(1...40))
        await engine.shutdown()
    }
}
