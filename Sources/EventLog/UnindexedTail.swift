import Foundation

/// Where this node's newest events are, by order, while they are not yet in
/// `order_index`. The writer adds each event as it writes it and indexes
/// them in the background in sorted batches (see GroupCommitWriter); readers
/// by order look here for the offsets after the snapshot's
/// `indexed_through`. Thread-safe.
///
/// It keeps every own offset after `keptAfter`. After an index commit moves
/// `indexed_through` from A to B, the entries up to A are dropped, not those
/// up to B: a reader whose snapshot still says A finds them here. A reader
/// with an older snapshot gets nil and reads again.
final class UnindexedTail: @unchecked Sendable {
    struct Entry: Sendable, Equatable {
        let orderID: String
        let version: Int64
        let offset: Int64
    }

    private let lock = NSLock()
    /// In offset order.
    private var entries: [Entry] = []
    private var first = 0
    private var byOrder: [String: [Entry]] = [:]
    private var keptAfter: Int64

    init(keptAfter: Int64) {
        self.keptAfter = keptAfter
    }

    var count: Int {
        lock.withLock { entries.count - first }
    }

    /// Writer: an own event written in the open transaction.
    func add(_ entry: Entry) {
        lock.withLock {
            entries.append(entry)
            byOrder[entry.orderID, default: []].append(entry)
        }
    }

    /// Writer: the transaction that wrote offsets from `offset` on rolled back.
    func removeFrom(offset: Int64) {
        lock.withLock {
            while entries.count > first, let last = entries.last, last.offset >= offset {
                entries.removeLast()
                byOrder[last.orderID]?.removeAll { $0.offset == last.offset }
                if byOrder[last.orderID]?.isEmpty == true { byOrder[last.orderID] = nil }
            }
        }
    }

    /// The order's own events after `indexedThrough` (a snapshot's
    /// `indexed_through`), or nil when some of them were dropped already.
    func entries(orderID: String, after indexedThrough: Int64) -> [Entry]? {
        lock.withLock {
            guard keptAfter <= indexedThrough else { return nil }
            return (byOrder[orderID] ?? []).filter { $0.offset > indexedThrough }
        }
    }

    /// Writer: the entries after `indexedThrough`, to index.
    func entries(after indexedThrough: Int64) -> [Entry] {
        lock.withLock {
            entries[first...].filter { $0.offset > indexedThrough }
        }
    }

    /// Writer: forgets the entries up to `offset` (indexed, and no reader
    /// needs them from here any more).
    func forget(through offset: Int64) {
        lock.withLock {
            guard offset > keptAfter else { return }
            keptAfter = offset
            var touched = Set<String>()
            while first < entries.count, entries[first].offset <= offset {
                touched.insert(entries[first].orderID)
                first += 1
            }
            for orderID in touched {
                byOrder[orderID]?.removeAll { $0.offset <= offset }
                if byOrder[orderID]?.isEmpty == true { byOrder[orderID] = nil }
            }
            if first > 4096 && first * 2 > entries.count {
                entries.removeFirst(first)
                first = 0
            }
        }
    }
}
