import NodeRuntime

/// The clock of one simulated node life. Monotonic time is the world's
/// virtual time plus an offset of this process's own (monotonic clocks of
/// two processes share no origin); wall time is the world's plus the node's
/// skew, which a fault may change. Sleeps and timers are the world's
/// timers; a timer due while the node is paused fires when it resumes (the
/// process was not running), and never after it died.
final class SimClock: NodeClock, @unchecked Sendable {
    unowned let world: SimWorld
    let executor: NodeExecutor
    private let monotonicOffsetNs: Int64
    private let node: SimNode

    init(world: SimWorld, executor: NodeExecutor, node: SimNode, monotonicOffsetNs: Int64) {
        self.world = world
        self.executor = executor
        self.node = node
        self.monotonicOffsetNs = monotonicOffsetNs
    }

    var monotonicNanoseconds: Int64 { world.nowNs + monotonicOffsetNs }

    var wallMs: Int64 { world.epochWallMs + world.nowMs + node.wallSkewMs }

    func sleep(for duration: Duration) async throws {
        let sleeper = Sleeper()
        let delay = duration.nanosecondsClamped
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                guard !sleeper.cancelled else {
                    continuation.resume(throwing: CancellationError())
                    return
                }
                sleeper.continuation = continuation
                sleeper.timer = world.after(delay) { sleeper.wake(nil) }
            }
        } onCancel: {
            sleeper.wake(CancellationError())
        }
    }

    func schedule(after delay: Duration, _ fire: @escaping @Sendable () -> Void) -> ScheduledTimer {
        let executor = self.executor
        let timer = world.after(delay.nanosecondsClamped) { executor.fire(fire) }
        return ScheduledTimer { timer.cancel() }
    }
}

/// One sleep: woken by its timer or by cancellation, whichever comes first.
/// Only the world's driver thread touches it.
private final class Sleeper: @unchecked Sendable {
    var continuation: CheckedContinuation<Void, any Error>?
    var timer: SimTimer?
    var cancelled = false

    func wake(_ error: (any Error)?) {
        if error != nil { cancelled = true }
        timer?.cancel()
        guard let continuation else { return }
        self.continuation = nil
        if let error { continuation.resume(throwing: error) } else { continuation.resume() }
    }
}

/// Starts a simulated node's tasks on its executor.
struct SimSpawner: TaskSpawner {
    let executor: NodeExecutor

    @discardableResult
    func spawn(_ body: @escaping @Sendable () async -> Void) -> Task<Void, Never> {
        executor.spawn(body)
    }
}

extension Duration {
    /// Nanoseconds, clamped to what an Int64 holds.
    var nanosecondsClamped: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return product.addingReportingOverflow(attoseconds / 1_000_000_000).overflow ? .max : product + attoseconds / 1_000_000_000
    }
}
