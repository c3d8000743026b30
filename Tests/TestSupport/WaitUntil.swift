/// A test failure with a message.
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Polls `condition` until it yields a value or the deadline passes: a
/// condition with a deadline, never a bare sleep. The default deadline is
/// generous: it only decides how long a failing test takes, and CI's first
/// seconds (every suite starting at once on two cores) once kept a lone
/// node from being ready within 10 s.
public func waitUntil<T>(_ what: String, timeout: Duration = .seconds(60), _ condition: () async throws -> T?) async throws -> T {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if let value = try await condition() { return value }
        try await Task.sleep(for: .milliseconds(10))
    }
    throw TestFailure("timed out after \(timeout) waiting for \(what)")
}

/// `waitUntil` for a plain condition.
public func waitFor(_ what: String, timeout: Duration = .seconds(60), _ condition: () async throws -> Bool) async throws {
    _ = try await waitUntil(what, timeout: timeout) { try await condition() ? true : nil }
}
