import Foundation
import ProcessLaunch
import Synchronization
import Testing

/// Children started at the same moment from several threads: each one's end
/// is seen when it ends, not when a sibling started beside it ends.
@Suite struct ProcessLaunchTests {
    static let stressRequested = ProcessInfo.processInfo.environment["ORDERLY_STRESS"] == "1"

    /// Two launches from two threads never overlap: the second one's pipes
    /// are made only once the first child is started.
    @Test func launchesFromTwoThreadsDoNotOverlap() async throws {
        let first = Process()
        first.executableURL = URL(fileURLWithPath: "/bin/true")
        let second = Process()
        second.executableURL = URL(fileURLWithPath: "/bin/true")
        let firstInside = DispatchSemaphore(value: 0)
        let secondCalling = DispatchSemaphore(value: 0)
        let secondPrepared = Atomic(false)
        let firstStartedWhenSecondPrepared = Mutex<Bool?>(nil)
        let done = DispatchGroup()
        done.enter()
        Thread.detachNewThread {
            defer { done.leave() }
            try? ProcessLaunch.run(first) {
                firstInside.signal()
                secondCalling.wait()
                // Without the lock the second launch prepares now; with it,
                // not before this one's child is started. Waits for that
                // with a deadline.
                let deadline = ContinuousClock.now + .milliseconds(300)
                while !secondPrepared.load(ordering: .acquiring) && ContinuousClock.now < deadline { usleep(1_000) }
            }
            if first.processIdentifier != 0 { first.waitUntilExit() }
        }
        done.enter()
        Thread.detachNewThread {
            defer { done.leave() }
            firstInside.wait()
            secondCalling.signal()
            try? ProcessLaunch.run(second) {
                firstStartedWhenSecondPrepared.withLock { $0 = first.processIdentifier != 0 }
                secondPrepared.store(true, ordering: .releasing)
            }
            if second.processIdentifier != 0 { second.waitUntilExit() }
        }
        await withCheckedContinuation { continuation in done.notify(queue: .global()) { continuation.resume() } }
        #expect(firstStartedWhenSecondPrepared.withLock { $0 } == true, "the second launch made its pipes while the first was being started")
    }

    /// The race itself, by the hundred: it spawns processes flat out for
    /// a minute or more, which starves every test beside it, so it runs
    /// alone (`.ci/run` does: ORDERLY_STRESS=1 swift test --filter
    /// ProcessLaunchTests).
    @Test(.enabled(if: stressRequested, "runs alone: ORDERLY_STRESS=1 swift test --filter ProcessLaunchTests (.ci/run does)"))
    func aChildThatEndedIsSeenToEndWhileOthersAreStarted() async throws {
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
