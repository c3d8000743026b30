import EventLog
import NodeRuntime

/// The clocks of a real node: the system's monotonic and wall clocks,
/// `Task.sleep`, and one timer thread for every deadline (`Deadlines`).
public struct SystemClock: NodeClock {
    public init() {}

    public var monotonicNanoseconds: Int64 {
        let (seconds, attoseconds) = (ContinuousClock.now - Self.start).components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    public var wallMs: Int64 { WallClock.nowMs() }

    public func sleep(for duration: Duration) async throws {
        try await Task.sleep(for: duration)
    }

    public func schedule(after delay: Duration, _ fire: @escaping @Sendable () -> Void) -> ScheduledTimer {
        let token = Deadlines.shared.add(after: delay, fire)
        return ScheduledTimer { Deadlines.shared.remove(token) }
    }

    private static let start = ContinuousClock.now
}

extension NodeEnvironment {
    /// A real node's: system clocks, plain tasks, a random seed.
    public static func system() -> NodeEnvironment {
        NodeEnvironment(clock: SystemClock(), spawner: GlobalTaskSpawner(), randomSeed: UInt64.random(in: 0...UInt64.max))
    }
}
