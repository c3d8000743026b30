import Foundation

/// Where this node's newest events are, by order, while they are not yet in
/// `order_index`. The writer adds each event as it writes it and indexes
/// them in the background in sorted batches (see GroupCommitWriter); readers
/// by order look here for the offsets after the snapshot's
/// `indexed_through`. Thread-safe.
///
/// Two generations: when an index commit moves `indexed_through` from A to
/// B, the entries up to A are dropped whole and those in (A, B] become the
/// older generation. A reader whose snapshot still says A finds them here;
/// a reader with an older snapshot gets nil and reads again.
final class UnindexedTail: @unchecked Sendable {
    struct Entry: Sendable, Equatable {
        let orderID: String
        let version: Int64
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
            while let last = entries.last, last.offset >= offset {
                let link = previous.removeLast()
                newest[last.orderID] = link >= 0 ? link : nil
                entries.removeLast()
            }
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

    /// The order's own events after `indexedThrough` (a snapshot's
    /// `indexed_through`), or nil when some of them were dropped already.
    func entries(orderID: String, after indexedThrough: Int64) -> [Entry]? {
        lock.withLock {
            guard keptAfter <= indexedThrough else { return nil }
            return (older.entries(of: orderID) + newer.entries(of: orderID)).filter { $0.offset > indexedThrough }
        }
    }

    /// Writer: every entry held is indexed now, and the index commit before
    /// covered up to `previous`: drops what is at or below `previous` and
    /// keeps the rest for readers whose snapshot says `previous`. MUST be
    /// called between transactions, after the index commit.
    func indexed(previous: Int64) {
        var dropped = Generation(expected: 0)
        lock.withLock {
            // The next generation is about as big: no regrowing as it fills.
            dropped = older
            older = newer
            newer = Generation(expected: older.entries.count)
            keptAfter = max(keptAfter, previous)
        }
        withExtendedLifetime(dropped) {}  // freed outside the lock
    }
}
