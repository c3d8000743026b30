import Foundation
import GRDB
import LogStorage
import Logging
import Synchronization

/// Which orders a node's log holds events of, so that reading an order the
/// log never held (every new order's activation) skips SQLite: about a
/// sixth of a single node's CPU a new order before it (see
/// docs/performance.md). An `OrderIDFilter` under a lock.
///
/// The writer inserts every order id it stores, own events, copies and
/// put-back events alike, before the transaction that stores them commits,
/// so no reader sees an event whose order reads as absent here. What the
/// file held when it was opened is read from its index once, in the
/// background (`fill`); until that read is done every lookup answers
/// "maybe" and reads go to SQLite as before.
final class OrderPresence: Sendable {
    private let filter = Mutex(OrderIDFilter())
    private let ready = Atomic<Bool>(false)

    func insert(_ orderIDs: some Sequence<String>) {
        filter.withLock { filter in
            for orderID in orderIDs { filter.insert(orderID) }
        }
    }

    /// False only when the log certainly holds no event of `orderID`.
    func mightHold(_ orderID: String) -> Bool {
        guard ready.load(ordering: .acquiring) else { return true }
        return filter.withLock { $0.mightContain(orderID) }
    }

    var isReady: Bool { ready.load(ordering: .acquiring) }

    /// Reads every order id the file held at open (its index and its
    /// checkpoints), on a thread of its own, then answers lookups. That is
    /// every order: once `EventLog.open` has run, every event of the file
    /// is in `order_index` (open indexes what a crash left out), and every
    /// event written since was inserted by the writer. A failed read leaves
    /// the filter unused.
    ///
    /// The index is read in short reads, by key: one long read would hold
    /// its snapshot, and the WAL behind it, for as long as the scan takes.
    func fill(from pool: DatabasePool, logger: Logger) {
        let thread = Thread { [self] in
            let started = DispatchTime.now().uptimeNanoseconds
            do {
                var after: String?
                while true {
                    let page = try pool.read { db -> [String] in
                        guard let after else {
                            return try String.fetchAll(db, sql: "SELECT DISTINCT order_id FROM order_index ORDER BY order_id LIMIT ?", arguments: [Self.page])
                        }
                        return try String.fetchAll(
                            db, sql: "SELECT DISTINCT order_id FROM order_index WHERE order_id > ? ORDER BY order_id LIMIT ?", arguments: [after, Self.page])
                    }
                    insertInSteps(page)
                    guard page.count == Self.page, let last = page.last else { break }
                    after = last
                }
                insertInSteps(try pool.read { db in try String.fetchAll(db, sql: "SELECT order_id FROM checkpoints") })
            } catch {
                logger.warning("could not read the log's order ids; reads of new orders go to SQLite", metadata: ["error": "\(error)"])
                return
            }
            ready.store(true, ordering: .releasing)
            let (count, bytes) = filter.withLock { ($0.count, $0.bytes) }
            logger.debug("order filter ready", metadata: [
                "orders": "\(count)", "bytes": "\(bytes)", "ms": "\((DispatchTime.now().uptimeNanoseconds - started) / 1_000_000)",
            ])
        }
        thread.name = "orderly-order-filter"
        thread.start()
    }

    /// Order ids a read of the index takes at once.
    static let page = 8192

    /// A few hundred ids a lock, so that readers and the writer wait little.
    private func insertInSteps(_ orderIDs: [String]) {
        var start = 0
        while start < orderIDs.count {
            let end = min(start + 512, orderIDs.count)
            insert(orderIDs[start..<end])
            start = end
        }
    }
}
