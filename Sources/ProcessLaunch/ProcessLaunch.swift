import Foundation

/// Starts child processes one at a time within this process.
///
/// Foundation's `Process.run()` on Linux learns that a child ended when the
/// child's end of a socket pair closes. It makes that pair without
/// close-on-exec and, before spawning, lists the descriptors to close in the
/// child as they are at that moment. A second `run()` on another thread in
/// between hands the first child's socket (and any pipe made for it) to its
/// own child. The first child can then end while its socket stays open in
/// the second: `isRunning` stays true and `waitUntilExit()` blocks until the
/// second child ends too. The test suite stalled for two minutes that way
/// (a short-lived child held by a concurrently started `orderly simtest`).
///
/// Every launch in Orderly, and its tests, makes the child's pipes and calls
/// `run()` inside `serialized`, so no launch sees another's half-made
/// descriptors.
public enum ProcessLaunch {
    private static let lock = NSLock()

    /// Runs `body`, which makes the child's pipes and calls `Process.run()`,
    /// while no other launch of this process runs.
    public static func serialized<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// Starts `process` alone; `prepare` first makes its pipes.
    public static func run(_ process: Process, prepare: () throws -> Void = {}) throws {
        try serialized {
            try prepare()
            try process.run()
        }
    }
}
