/// Time as one node sees it. Node logic reads and waits on time only
/// through this, so the deterministic simulation can drive it: a real node
/// uses the system's clocks (`SystemClock` in `Node`), a simulated one a
/// virtual clock the simulator moves, pauses and skews.
public protocol NodeClock: Sendable {
    /// Nanoseconds on a clock that never goes back (arbitrary origin):
    /// what durations, leases and failure detection are measured with.
    var monotonicNanoseconds: Int64 { get }
    /// Milliseconds since the Unix epoch: what events record and timers of
    /// held payments are set by. May jump or be skewed between nodes.
    var wallMs: Int64 { get }
    /// Suspends for `duration`; throws `CancellationError` at once when the
    /// task is cancelled.
    func sleep(for duration: Duration) async throws
    /// Calls `fire` once, `delay` from now, unless the timer is cancelled
    /// first. `fire` may run on any thread and MUST be short.
    func schedule(after delay: Duration, _ fire: @escaping @Sendable () -> Void) -> ScheduledTimer
}

/// A timer from `NodeClock.schedule`.
public struct ScheduledTimer: Sendable {
    private let cancelBody: @Sendable () -> Void

    public init(cancel: @escaping @Sendable () -> Void) {
        self.cancelBody = cancel
    }

    /// Stops the timer if it has not fired yet (harmless after).
    public func cancel() { cancelBody() }
}

extension NodeClock {
    /// `monotonicNanoseconds` in whole milliseconds.
    public var monotonicMs: Int64 { monotonicNanoseconds / 1_000_000 }

    /// Runs `body`; if it has not finished after `timeout`, calls
    /// `onTimeout`, which MUST make `body` finish (fail a continuation,
    /// close a channel). `onTimeout` may run after `body` has finished too,
    /// so it must tolerate that (take its waiter out under a lock, resume it
    /// only if found).
    public func withDeadline<T>(
        _ timeout: Duration, onTimeout: @escaping @Sendable () -> Void, _ body: () async throws -> T
    ) async rethrows -> T {
        let timer = schedule(after: timeout, onTimeout)
        defer { timer.cancel() }
        return try await body()
    }
}

extension Duration {
    /// Whole milliseconds (truncated).
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
