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

    /// Reads every order id the file holds (its index, the own events the
    /// index does not have yet, and checkpoints), on a thread of its own,
    /// then answers lookups. Ids the writer stores meanwhile it inserts
    /// itself. A failed read leaves the filter unused.
    func fill(from pool: DatabasePool, origin: String, logger: Logger) {
        let thread = Thread { [self] in
            let started = DispatchTime.now().uptimeNanoseconds
            do {
                try pool.read { db in
                    var chunk: [String] = []
                    chunk.reserveCapacity(4096)
                    func drain(_ cursor: some Cursor<String>) throws {
                        while let orderID = try cursor.next() {
                            chunk.append(orderID)
                            if chunk.count == 4096 {
                                insert(chunk)
                                chunk.removeAll(keepingCapacity: true)
                            }
                        }
                    }
                    try drain(String.fetchCursor(db, sql: "SELECT DISTINCT order_id FROM order_index"))
                    let indexedThrough = try EventLog.indexedThrough(db)
                    try drain(String.fetchCursor(
                        db, sql: #"SELECT order_id FROM events WHERE origin = ? AND "offset" > ?"#, arguments: [origin, indexedThrough]))
                    for (copied, watermark) in try EventLog.copyWatermarks(db) {
                        try drain(String.fetchCursor(
                            db, sql: #"SELECT order_id FROM events WHERE origin = ? AND "offset" > ?"#, arguments: [copied, watermark]))
                    }
                    try drain(String.fetchCursor(db, sql: "SELECT order_id FROM checkpoints"))
                    insert(chunk)
                }
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
}
