import Foundation

/// The process's pending deadlines and the thread that fires them: the
/// timers of `SystemClock`. The thread sleeps while there are none and
/// otherwise looks every `resolution` (a deadline fires at most that late).
///
/// Every command waiting for its replicas and every fetch has one: the
/// deadlines live in one table that one thread sweeps, instead of a task
/// and a timer each (creating, scheduling and cancelling those cost about
/// as much as the rest of a fetch round).
final class Deadlines: @unchecked Sendable {
    static let shared = Deadlines()

    static let resolution: Duration = .milliseconds(5)

    private let condition = NSCondition()
    private var pending: [UInt64: (dueNs: UInt64, fire: @Sendable () -> Void)] = [:]
    private var nextToken: UInt64 = 0
    private var started = false

    func add(after timeout: Duration, _ fire: @escaping @Sendable () -> Void) -> UInt64 {
        let due = DispatchTime.now().uptimeNanoseconds &+ UInt64(max(0, timeout.milliseconds)) * 1_000_000
        condition.lock()
        defer { condition.unlock() }
        if !started {
            started = true
            let thread = Thread { [self] in sweep() }
            thread.name = "orderly-deadlines"
            thread.start()
        }
        nextToken &+= 1
        pending[nextToken] = (due, fire)
        if pending.count == 1 { condition.signal() }
        return nextToken
    }

    func remove(_ token: UInt64) {
        condition.lock()
        pending[token] = nil
        condition.unlock()
    }

    private func sweep() {
        let step = TimeInterval(Self.resolution.milliseconds) / 1000
        while true {
            condition.lock()
            while pending.isEmpty { condition.wait() }
            _ = condition.wait(until: Date(timeIntervalSinceNow: step))
            let now = DispatchTime.now().uptimeNanoseconds
            var due: [@Sendable () -> Void] = []
            for (token, entry) in pending where entry.dueNs <= now {
                due.append(entry.fire)
                pending[token] = nil
            }
            condition.unlock()
            for fire in due { fire() }
        }
    }
}
