import Foundation
import Logging
import Metrics

extension GroupCommitWriter {
    /// Newest offset of this node's own log that is committed.
    var committedOffset: Int64 {
        condition.lock()
        defer { condition.unlock() }
        return committedThrough
    }

    /// The failed fsync that stopped this writer, if one did.
    var failure: EventLogError? {
        condition.lock()
        defer { condition.unlock() }
        return syncFailure
    }

    /// Calls `body` after every commit that moved the own log forward.
    func onCommit(_ body: @escaping @Sendable (Int64) -> Void) {
        condition.lock()
        commitObservers.append(body)
        condition.unlock()
    }

    /// The sync thread: makes what the writer committed durable, then
    /// answers it. One fdatasync covers every transaction written before it.
    func runSync() {
        while true {
            syncCondition.lock()
            while written.isEmpty && !writerDone {
                syncCondition.wait()
            }
            if written.isEmpty && writerDone {
                syncCondition.unlock()
                condition.lock()
                stopped = true
                condition.broadcast()
                condition.unlock()
                return
            }
            let ready = written
            written.removeAll(keepingCapacity: true)
            syncCondition.unlock()
            condition.lock()
            let failure = syncFailure
            condition.unlock()
            if let failure {
                // Linux reports a writeback error once: a later fdatasync
                // may succeed without the lost pages. Never answer again.
                fail(ready, failure)
                continue
            }
            // Barriers alone owe no fsync: what came before them was
            // synced in an earlier round.
            if walDescriptor >= 0 && !ready.allSatisfy(\.empty) {
                guard fdatasync(walDescriptor) == 0 else {
                    fail(ready, EventLogError.syncFailed(String(cString: strerror(errno))))
                    continue
                }
                condition.lock()
                syncs += 1
                condition.unlock()
            }
            answer(ready)
        }
    }

    private func answer(_ ready: [Written]) {
        var ownEvents = 0
        for transaction in ready { ownEvents += transaction.ownEvents }
        var requests = 0
        for transaction in ready { requests += transaction.batch.count }
        // Durable now: held for followers' fetches before `committedThrough`
        // offers them (see `RecentOwnEvents`).
        for transaction in ready { recentOwn.add(transaction.appended.flatMap { $0 }, through: transaction.through) }
        condition.lock()
        commits += ready.count { !$0.empty }
        committedEvents += ownEvents
        committedThrough = ready[ready.count - 1].through
        unanswered -= requests
        let observers = ownEvents > 0 ? commitObservers : []
        condition.unlock()
        let now = DispatchTime.now().uptimeNanoseconds
        for transaction in ready {
            if !transaction.empty {
                appendedCounter.increment(by: transaction.ownEvents)
                batchEvents.record(transaction.ownEvents)
                commitTimer.recordNanoseconds(Int64(now - transaction.startNs))
            }
            var appended = transaction.appended.makeIterator()
            var replicated = transaction.copied.makeIterator()
            for item in transaction.batch {
                switch item {
                case .append(_, let continuation): continuation.resume(returning: appended.next()!)
                case .replicate(_, let continuation): continuation.resume(returning: replicated.next()!)
                }
            }
        }
        let through = ready[ready.count - 1].through
        for observer in observers { observer(through) }
    }

    /// An fsync that fails leaves the file's durability unknown (the kernel
    /// may have dropped the dirty pages): the writer refuses everything from
    /// then on, and the node must be restarted to recover from the file.
    private func fail(_ ready: [Written], _ error: EventLogError) {
        condition.lock()
        if syncFailure == nil {
            logger.critical("fsync of the WAL failed; the log refuses appends until restarted", metadata: ["error": "\(error)"])
        }
        syncFailure = error
        for transaction in ready { unanswered -= transaction.batch.count }
        condition.unlock()
        for transaction in ready {
            for item in transaction.batch { item.fail(error) }
        }
    }
}
