import EventLog
import Foundation
import OrderDomain
import Synchronization
@_exported import TestSupport

@testable import Node

/// A wall clock the test moves by hand.
final class ManualClock: Sendable {
    private let now = Mutex<Int64>(1_700_000_000_000)
    func read() -> Int64 { now.withLock { $0 } }
    func advance(ms: Int64) { now.withLock { $0 += ms } }
}

func id(_ raw: String) -> ClientID { ClientID(raw)! }

extension Result {
    var value: Success? { try? get() }
}

let someSKU = Catalog.standard.page(after: nil, limit: 1).products[0].sku
let someSKUPrice = Catalog.standard.product(sku: someSKU)!.priceCents
