import Foundation

/// A fresh folder under the system temp dir, removed when the test ends
/// (kept, for a look at the nodes' logs, with ORDERLY_KEEP_TEST_DATA=1).
public struct TemporaryFolder: ~Copyable {
    public let path: String

    public init() throws {
        path = (NSTemporaryDirectory() as NSString).appendingPathComponent("orderly-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// A path inside the folder.
    public func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    deinit {
        guard ProcessInfo.processInfo.environment["ORDERLY_KEEP_TEST_DATA"] != "1" else { return }
        try? FileManager.default.removeItem(atPath: path)
    }
}
