import Foundation

extension GroupCommitWriter {
    /// fdatasync calls of the WAL by the sync thread, since start.
    var walSyncs: Int {
        condition.lock()
        defer { condition.unlock() }
        return syncs
    }

    /// Transactions committed and the events they held, since start, and
    /// the CPU time the writer thread has used (compare builds by it: it
    /// moves far less with the host than events/s do).
    var statistics: (commits: Int, events: Int, writerCPUSeconds: Double) {
        condition.lock()
        defer { condition.unlock() }
        return (commits, committedEvents, Double(writerCPUNs) / 1e9)
    }

    static func threadCPUNs() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}
