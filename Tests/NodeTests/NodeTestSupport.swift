import EventLog
import Foundation
import OrderDomain
import Synchronization

@testable import Node

/// A fresh folder under the system temp dir, removed when the test ends.
struct TemporaryFolder: ~Copyable {
    let path: String

    init() throws {
        path = (NSTemporaryDirectory() as NSString).appendingPathComponent("orderly-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}

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
