import Foundation
import NIOConcurrencyHelpers
import Testing

@testable import Node

/// `withDeadline` ends a wait that nobody else ends, and leaves alone one
/// that ends in time: a write whose replicas never answer gets its 503, a
/// write that was confirmed is never failed afterwards.
@Suite struct DeadlineTests {
    @Test func aWaitNobodyEndsIsEndedAtItsDeadline() async throws {
        let waiter = NIOLockedValueBox<CheckedContinuation<Void, any Error>?>(nil)
        struct Expired: Error {}
        await #expect(throws: Expired.self) {
            try await SystemClock().withDeadline(.milliseconds(50), onTimeout: { waiter.withLockedValue { $0.take() }?.resume(throwing: Expired()) }) {
                try await withCheckedThrowingContinuation { continuation in waiter.withLockedValue { $0 = continuation } }
            }
        }
    }

    @Test func aWaitThatEndsInTimeIsNotTimedOutLater() async throws {
        let fired = NIOLockedValueBox(0)
        for _ in 0..<100 {
            let value = try await SystemClock().withDeadline(.milliseconds(30), onTimeout: { fired.withLockedValue { $0 += 1 } }) { 7 }
            #expect(value == 7)
        }
        // A deadline that was due would fire within the sweep's resolution;
        // wait for a later one to fire, so the earlier ones had their chance.
        let later = NIOLockedValueBox(false)
        let waiter = NIOLockedValueBox<CheckedContinuation<Void, Never>?>(nil)
        try await SystemClock().withDeadline(.milliseconds(60), onTimeout: {
            later.withLockedValue { $0 = true }
            waiter.withLockedValue { $0.take() }?.resume()
        }) {
            await withCheckedContinuation { continuation in waiter.withLockedValue { $0 = continuation } }
        }
        #expect(later.withLockedValue { $0 })
        #expect(fired.withLockedValue { $0 } == 0)
    }
}
