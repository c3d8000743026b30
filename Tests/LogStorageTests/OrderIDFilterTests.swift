import LogStorage
import Testing

/// The filter that lets a log skip reading orders it never held: it must
/// never call an inserted id absent, however far it grows, and must call
/// nearly every other id absent, or it saves nothing.
@Suite struct OrderIDFilterTests {
    @Test func everyInsertedIDStaysPresentAcrossLayers() {
        var filter = OrderIDFilter(initialCapacity: 100)
        let ids = (0..<50_000).map { "o-\($0)" }
        for id in ids { filter.insert(id) }
        #expect(ids.allSatisfy { filter.mightContain($0) })
        // 100, 200, 400, ... ids a layer: the bits grew with the ids.
        #expect(filter.count <= 50_000)
        #expect(filter.bytes >= 50_000 * 10 / 8)
        #expect(filter.bytes < 50_000 * 10)
    }

    @Test func fewIDsNeverInsertedReadAsPresent() {
        var filter = OrderIDFilter(initialCapacity: 1000)
        for id in (0..<20_000).map({ "order-\($0)" }) { filter.insert(id) }
        let strangers = (0..<100_000).map { "stranger-\($0)" }
        let maybe = strangers.filter { filter.mightContain($0) }.count
        #expect(maybe < 2_000, "\(maybe) of 100,000 ids never inserted read as present")
    }

    @Test func anEmptyFilterHoldsNothingAndInsertingTwiceCountsOnce() {
        var filter = OrderIDFilter()
        #expect(!filter.mightContain("o-1"))
        #expect(!filter.mightContain(""))
        filter.insert("o-1")
        filter.insert("o-1")
        #expect(filter.mightContain("o-1"))
        #expect(filter.count == 1)
        filter.insert("")
        #expect(filter.mightContain(""))
    }
}
