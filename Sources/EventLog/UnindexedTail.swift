import Foundation

/// Where the newest events are, by order, while they are not yet in
/// `order_index`. The writer adds each event as it writes it and indexes
/// them in the background in sorted batches (see GroupCommitWriter); readers
/// by order look here for what their snapshot's index lacks. The writer
/// keeps one for its own events (the snapshot's mark is `indexed_through`)
/// and one for the copies its followers' tail loops store (the mark is the
/// number of copy index batches; each origin has its own watermark).
/// Thread-safe.
///
/// Two generations: when an index commit moves the mark from A to B, the
/// entries indexed at A are dropped whole and those indexed at B become the
/// older generation. A reader whose snapshot still says A finds them here;
/// a reader with an older snapshot gets nil and reads again.
final class UnindexedTail: @unchecked Sendable {
    struct Entry: Sendable, Equatable {
        let orderID: String
        let version: Int64
        let origin: String
        let offset: Int64
    }

    /// One generation's entries in offset order. Each links to the previous
    /// entry of its order, so adding one allocates nothing per order.
    struct Generation {
        private(set) var entries: [Entry] = []
        private var previous: [Int32] = []
        private var newest: [String: Int32]

        init(expected: Int = 0) {
            entries.reserveCapacity(expected)
            previous.reserveCapacity(expected)
            newest = Dictionary(minimumCapacity: expected)
        }

        mutating func add(_ entry: Entry) {
            previous.append(newest.updateValue(Int32(entries.count), forKey: entry.orderID) ?? -1)
            entries.append(entry)
        }

        /// The order's entries, in offset order.
        func entries(of orderID: String) -> [Entry] {
            var found: [Entry] = []
            var index = newest[orderID] ?? -1
            while index >= 0 {
                found.append(entries[Int(index)])
                index = previous[Int(index)]
            }
            return found.reversed()
        }

        /// Drops the entries from `offset` on (they are the newest).
        mutating func removeFrom(offset: Int64) {
            while let last = entries.last, last.offset >= offset { removeLast() }
        }

        mutating func removeLast(_ count: Int) {
            for _ in 0..<min(count, entries.count) { removeLast() }
        }

        private mutating func removeLast() {
            let last = entries.removeLast()
            let link = previous.removeLast()
            newest[last.orderID] = link >= 0 ? link : nil
        }
    }

    private let lock = NSLock()
    /// Entries in (keptAfter, older's end], then the newer ones.
    private var older = Generation()
    private var newer = Generation()
    private var keptAfter: Int64

    init(keptAfter: Int64) {
        self.keptAfter = keptAfter
    }

    var count: Int {
        lock.withLock { older.entries.count + newer.entries.count }
    }

    /// The entries no index commit has covered yet (the newer generation).
    var pendingCount: Int {
        lock.withLock { newer.entries.count }
    }

    /// Writer: a transaction's own events, under one lock.
    func add(_ entries: [Entry]) {
        lock.withLock {
            for entry in entries { newer.add(entry) }
        }
    }

    /// Writer: the transaction that wrote offsets from `offset` on rolled
    /// back (its entries are all in the newer generation).
    func removeFrom(offset: Int64) {
        lock.withLock { newer.removeFrom(offset: offset) }
    }

    /// Writer: the transaction that added the newest `count` entries rolled
    /// back.
    func removeLast(_ count: Int) {
        lock.withLock { newer.removeLast(count) }
    }

    /// The order's own events after `indexedThrough` (a snapshot's
    /// `indexed_through`), or nil when some of them were dropped already.
    func entries(orderID: String, after indexedThrough: Int64) -> [Entry]? {
        entries(orderID: orderID, mark: indexedThrough) { $0.offset > indexedThrough }
    }

    /// The order's entries a snapshot whose mark is `mark` lacks in its
    /// index (`unindexed` tells them apart), or nil when some of them were
    /// dropped already.
    func entries(orderID: String, mark: Int64, _ unindexed: (Entry) -> Bool) -> [Entry]? {
        lock.withLock {
            guard keptAfter <= mark else { return nil }
            return (older.entries(of: orderID) + newer.entries(of: orderID)).filter(unindexed)
        }
    }

    /// Writer: the entries no index commit has covered yet, oldest first
    /// (what an index batch takes). MUST be called between transactions.
    var pendingEntries: [Entry] {
        lock.withLock { newer.entries }
    }

    /// Writer: the oldest `count` pending entries (all of them when nil)
    /// are indexed now, and the index commit before covered up to
    /// `previous`: drops what is at or below `previous` and keeps the
    /// indexed ones for readers whose snapshot says `previous`; entries
    /// added since the batch began stay pending. MUST be called between
    /// transactions, after the index commit.
    func indexed(previous: Int64, count: Int? = nil) {
        // Only the writer adds entries: what it reads here stays as it is
        // while the split is built outside the lock.
        let pending = lock.withLock { newer.entries.count }
        var split: (Generation, Generation)?
        if let count, count < pending {
            let entries = lock.withLock { newer.entries }
            var indexed = Generation(expected: count)
            var rest = Generation(expected: max(count, entries.count - count))
            for entry in entries[..<count] { indexed.add(entry) }
            for entry in entries[count...] { rest.add(entry) }
            split = (indexed, rest)
        }
        var dropped = Generation(expected: 0)
        lock.withLock {
            dropped = older
            if let (indexed, rest) = split {
                older = indexed
                newer = rest
            } else {
                // The next generation is about as big: no regrowing as it fills.
                older = newer
                newer = Generation(expected: older.entries.count)
            }
            keptAfter = max(keptAfter, previous)
        }
        withExtendedLifetime(dropped) {}  // freed outside the lock
    }
}
