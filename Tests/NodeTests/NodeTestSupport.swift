import EventLog
import Foundation
import NodeRuntime
import OrderDomain
import Synchronization
@_exported import TestSupport

@testable import Node

/// A wall clock the test moves by hand; monotonic time, sleeps and timers
/// are the system's.
final class ManualClock: NodeClock {
    private let now = Mutex<Int64>(1_700_000_000_000)
    func read() -> Int64 { now.withLock { $0 } }
    func advance(ms: Int64) { now.withLock { $0 += ms } }

    var wallMs: Int64 { read() }
    var monotonicNanoseconds: Int64 { SystemClock().monotonicNanoseconds }
    func sleep(for duration: Duration) async throws { try await SystemClock().sleep(for: duration) }
    func schedule(after delay: Duration, _ fire: @escaping @Sendable () -> Void) -> ScheduledTimer {
        SystemClock().schedule(after: delay, fire)
    }
}

func id(_ raw: String) -> ClientID { ClientID(raw)! }

extension Result {
    var value: Success? { try? get() }
}

let someSKU = Catalog.standard.page(after: nil, limit: 1).products[0].sku
let someSKUPrice = Catalog.standard.product(sku: someSKU)!.priceCents
