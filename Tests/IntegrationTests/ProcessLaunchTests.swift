import Foundation
import ProcessLaunch
import Synchronization
import Testing

/// Children started at the same moment from several threads: each one's end
/// is seen when it ends, not when a sibling started beside it ends.
@Suite struct ProcessLaunchTests {
    @Test func aChildThatEndedIsSeenToEndWhileOthersAreStarted() async throws {
        let late = try await Self.onThreads(longLaunchers: 3, shortLaunches: 600)
        #expect(late.isEmpty, "children that ended were seen to end only after a sibling did: \(late.prefix(5))")
    }

    /// Starts `/bin/true` `shortLaunches` times while `longLaunchers` threads
    /// keep starting two-second sleeps, and returns how long each short child
    /// took to be seen ended, for those over a second.
    static func onThreads(longLaunchers: Int, shortLaunches: Int) async throws -> [Double] {
        try await withCheckedThrowingContinuation { continuation in
            let stop = Atomic(false)
            let long = Mutex<[Process]>([])
            for _ in 0..<longLaunchers {
                Thread.detachNewThread {
                    while !stop.load(ordering: .relaxed) {
                        let sleeper = Process()
                        sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
                        sleeper.arguments = ["2"]
                        guard (try? ProcessLaunch.run(sleeper)) != nil else { return }
                        long.withLock { $0.append(sleeper) }
                    }
                }
            }
            Thread.detachNewThread {
                defer {
                    stop.store(true, ordering: .relaxed)
                    for sleeper in long.withLock({ $0 }) where sleeper.isRunning { sleeper.terminate() }
                }
                var late: [Double] = []
                do {
                    for _ in 0..<shortLaunches {
                        let short = Process()
                        short.executableURL = URL(fileURLWithPath: "/bin/true")
                        try ProcessLaunch.run(short)
                        let start = ContinuousClock.now
                        while short.isRunning && ContinuousClock.now - start < .seconds(5) { usleep(500) }
                        let took = ContinuousClock.now - start
                        if took > .seconds(1) { late.append(Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18) }
                    }
                    continuation.resume(returning: late)
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }
}
