import LogStorage
import Synchronization

/// The newest durable events of the node's own log, in memory: followers
/// fetch the own log from where they stand, which is almost always among
/// the last few thousand events, so their fetches are answered from here
/// instead of a read of SQLite per fetch.
///
/// It holds a run of own offsets with no gap, from its first to the newest
/// durable own offset. The sync thread adds each transaction's own events
/// once they are durable and BEFORE it moves `committedOffset` past them,
/// so a reader that read `committedOffset` first finds every event up to it
/// here (or learns that the run does not reach back far enough, and reads
/// SQLite). Own offsets are given out one after another and a failed
/// transaction gives none, so appends leave no gap. Own events put back
/// (`EventLog.reimport`) are not added: a transaction whose own events skip
/// an offset, or whose durable end is not the run's newest event, empties
/// the run.
final class RecentOwnEvents: Sendable {
    private struct Run {
        var events: [EventRecord] = []
        /// Index in `events` of the oldest event still held (older ones are
        /// dropped in chunks, so appending stays O(1) amortized).
        var head = 0
    }

    private let run = Mutex(Run())
    let capacity: Int

    init(capacity: Int = 16_384) {
        self.capacity = capacity
    }

    /// A transaction's own events, just made durable, in offset order, and
    /// the newest own offset durable with them. Anything but a run that
    /// ends exactly there starts again empty.
    func add(_ records: [EventRecord], through: Int64) {
        run.withLock { run in
            // Own events put back in the same transaction as appends leave a
            // gap between these (found by review: append, put back, append
            // in one batch).
            guard zip(records, records.dropFirst()).allSatisfy({ $1.offset == $0.offset + 1 }) else {
                run = Run()
                return
            }
            if let last = run.events.last, let next = records.first, last.offset + 1 != next.offset {
                run = Run()
            }
            run.events.append(contentsOf: records)
            if let last = run.events.last, last.offset != through {
                run = Run()
                return
            }
            if run.events.count - run.head > capacity { run.head = run.events.count - capacity }
            if run.head >= capacity {
                run.events.removeFirst(run.head)
                run.head = 0
            }
        }
    }

    /// The held events from `fromOffset` on, at most `limit`; empty when
    /// `fromOffset` is past the newest; nil when the run does not reach
    /// back to `fromOffset` (read SQLite instead).
    func events(fromOffset: Int64, limit: Int) -> [EventRecord]? {
        run.withLock { run in
            guard run.head < run.events.count else { return nil }
            let first = run.events[run.head].offset
            guard fromOffset >= first else { return nil }
            let start = run.head + Int(fromOffset - first)
            guard start < run.events.count else { return [] }
            guard run.events[start].offset == fromOffset else { return nil }
            return Array(run.events[start..<(start + min(max(limit, 0), run.events.count - start))])
        }
    }
}
