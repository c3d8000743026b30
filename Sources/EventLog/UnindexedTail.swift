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

    private let lock = NSLock()
    /// Entries in (keptAfter, older's end], then the newer ones, each in
    /// offset order per order.
    private var older: [String: [Entry]] = [:]
    private var newer: [String: [Entry]] = [:]
    private var keptAfter: Int64

    init(keptAfter: Int64) {
        self.keptAfter = keptAfter
    }

    var count: Int {
        lock.withLock { older.values.reduce(0) { $0 + $1.count } + newer.values.reduce(0) { $0 + $1.count } }
    }

    /// Writer: an own event written in the open transaction.
    func add(_ entry: Entry) {
        lock.withLock {
            newer[entry.orderID, default: []].append(entry)
        }
    }

    /// Writer: the transaction that wrote offsets from `offset` on rolled
    /// back (its entries are all in the newer generation).
    func removeFrom(offset: Int64) {
        lock.withLock {
            for (orderID, entries) in newer where entries.last.map({ $0.offset >= offset }) == true {
                let kept = entries.filter { $0.offset < offset }
                newer[orderID] = kept.isEmpty ? nil : kept
            }
        }
    }

    /// The order's own events after `indexedThrough` (a snapshot's
    /// `indexed_through`), or nil when some of them were dropped already.
    func entries(orderID: String, after indexedThrough: Int64) -> [Entry]? {
        lock.withLock {
            guard keptAfter <= indexedThrough else { return nil }
            let all = (older[orderID] ?? []) + (newer[orderID] ?? [])
            return all.filter { $0.offset > indexedThrough }
        }
    }

    /// Writer: every entry held is indexed now, and the index commit before
    /// covered up to `previous`: drops what is at or below `previous` and
    /// keeps the rest for readers whose snapshot says `previous`. MUST be
    /// called between transactions, after the index commit.
    func indexed(previous: Int64) {
        let dropped: [String: [Entry]] = lock.withLock {
            let dropped = older
            older = newer
            newer = [:]
            keptAfter = max(keptAfter, previous)
            return dropped
        }
        withExtendedLifetime(dropped) {}  // freed outside the lock
    }
}
