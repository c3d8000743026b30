/// How hard a commit tries to reach the disk.
public enum Durability: String, Sendable, CaseIterable {
    /// fsync the WAL before answering any commit: a reply survives a power
    /// cut. One fsync covers every transaction written before it.
    case fsync
    /// Leave syncing to SQLite's WAL checkpoints (`synchronous=NORMAL`): a
    /// process crash loses nothing, a power cut may lose the last commits.
    case relaxed
}

public struct EventLogOptions: Sendable {
    public var durability: Durability = .fsync
    /// Most events one group commit writes in a single transaction.
    public var batchEventsMax: Int = 4096
    /// Most append requests one transaction takes; 1 makes the naive writer
    /// (one transaction per request) that the benchmark compares against.
    public var batchRequestsMax: Int = 4096
    /// With `.fsync`: a sync thread fsyncs the WAL while the writer starts
    /// the next transaction, and one fsync may cover several transactions.
    /// Off, SQLite fsyncs inside every commit (`synchronous=FULL`), which
    /// with `batchRequestsMax` 1 is the naive writer of the benchmark.
    public var pipelinedSync: Bool = true
    /// Most append requests waiting for the writer; past it appends fail fast
    /// with `overloaded` instead of growing memory without bound.
    public var pendingRequestsMax: Int = 65_536
    /// SQLite page size of a new file. With the order index off the commit
    /// path a commit touches few pages, all at the log's end, and larger
    /// pages make the index batches cheaper (`bench append`: about 98k
    /// events/s with 4 KiB pages against 86k with 1 KiB).
    public var pageBytes: Int = 4096
    /// WAL pages before SQLite copies them back into the database file. A
    /// larger WAL copies a hot page once for many commits; recovery reads at
    /// most this much WAL, so it stays bounded.
    public var walAutocheckpointPages: Int = 10_000
    /// Page cache of the writer connection. Small on purpose: SQLite's
    /// commit costs grow with the cache (measured with this SQLite 3.40 on
    /// 1 KiB pages: 32-row commits of random order ids into a 1M-event log
    /// ran at 26k rows/s with 2 MiB and 16k with 64 MiB; `bench append`
    /// 62k against 54k). Pages it drops are still in the OS page cache.
    public var writerCacheKibibytes: Int = 2048
    /// Own events the writer lets wait before it adds them to `order_index`
    /// in one sorted batch (sooner when it has nothing else to do).
    /// Larger batches share more index pages; 16,384 index in about 20 ms.
    public var indexBatchEvents: Int = 16_384
    /// Rows of an index batch added in one transaction: appends commit
    /// between them, so none waits behind a whole batch.
    public var indexChunkRows: Int = 2048
    /// How long the writer waits for work before it indexes what is waiting.
    public var indexIdleDelaySeconds: Double = 0.02
    /// Wall clock in ms since the epoch, an input so tests can fix it.
    public var clock: @Sendable () -> Int64 = { WallClock.nowMs() }

    public init() {}
}

public enum WallClock {
    public static func nowMs() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }

    /// Monotonic nanoseconds, for measuring durations.
    public static func monotonicNs() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
