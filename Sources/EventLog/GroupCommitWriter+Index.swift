import Foundation
import GRDB
import Logging
import Metrics

extension GroupCommitWriter {
    func flushTailBuffer() {
        flushCopyBuffer()
        guard !tailBuffer.isEmpty else { return }
        tail.add(tailBuffer)
        tailBuffer.removeAll(keepingCapacity: true)
    }

    /// Like `flushTailBuffer`, for copies: added before the commit, taken
    /// back if it fails.
    private func flushCopyBuffer() {
        guard !copyBuffer.isEmpty else { return }
        copies.add(copyBuffer)
        copiesAddedInTransaction += copyBuffer.count
        copyBuffer.removeAll(keepingCapacity: true)
    }

    /// The order's copies not in `order_index` as the writer sees it now.
    func unindexedCopies(of orderID: String) -> [UnindexedTail.Entry] {
        copies.entries(orderID: orderID, mark: copyIndexBatches) { [copyWatermarks, newWatermarks] entry in
            entry.offset > (copyWatermarks[entry.origin] ?? newWatermarks[entry.origin] ?? 0)
        } ?? []
    }

    /// Adds the own events written since the last call to `order_index`,
    /// sorted (SQLite sorts them as it reads them back from the log), in one
    /// transaction with the new `indexed_through`: a batch of them shares
    /// the index pages that commits one by one would each rewrite. Not
    /// synced here; the next fsync covers it, and after a crash
    /// `EventLog.open` indexes whatever the file's `indexed_through` lacks.
    /// Runs on the writer thread between commits.
    func indexTail() {
        let through = nextOffset - 1
        let copiesPending = copies.pendingCount > 0
        let newest = copiesPending ? copies.newestPendingOffsets : [:]
        let copyRanges = newest.compactMap { origin, end -> (String, Int64, Int64)? in
            let from = copyWatermarks[origin] ?? 0
            return end > from ? (origin, from, end) : nil
        }
        guard through > indexedThrough || copiesPending else { return }
        let from = indexedThrough
        let batches = copyIndexBatches
        do {
            try pool.writeWithoutTransaction { db in
                try Self.inImmediateTransaction(db) {
                    if through > from {
                        try EventLog.index(origin: origin, after: from, through: through, db)
                    }
                    if copiesPending {
                        for (copyOrigin, after, end) in copyRanges {
                            try EventLog.index(copiesOf: copyOrigin, after: after, through: end, db)
                        }
                        try EventLog.setCopyIndexBatches(batches + 1, db)
                    }
                }
            }
        } catch {
            // The entries stay in the tails; the next try is a second away.
            logger.error("indexing the newest events failed", metadata: ["through": "\(through)", "error": "\(error)"])
            indexRetryAtNs = DispatchTime.now().uptimeNanoseconds + 1_000_000_000
            return
        }
        if through > from {
            indexedThrough = through
            // Readers whose snapshot still says `from` need the entries after
            // it: forget only what an older snapshot would ask for.
            tail.indexed(previous: from)
            indexedCounter.increment(by: Int(through - from))
        }
        if copiesPending {
            for (copyOrigin, _, end) in copyRanges { copyWatermarks[copyOrigin] = end }
            copyIndexBatches = batches + 1
            copies.indexed(previous: batches)
        }
    }
}
