import AsyncHTTPClient
import Foundation
import ProcessLaunch
import NIOCore
import NIOHTTP1
import Synchronization
@_exported import TestSupport

/// A value shared between tasks and threads, behind a lock.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<T>(_ body: (inout Value) -> T) -> T { mutex.withLock { body(&$0) } }
    var value: Value { mutex.withLock { $0 } }
}

/// A real `orderly` process started by a test. `stop` (or deinit) always
/// ends it, so no test leaves a process behind, even when it fails.
final class OrderlyProcess: @unchecked Sendable {
    let process = Process()
    let stderrPath: String
    private let output = Locked("")

    static var binary: String { OrderlyBinary.path }

    /// `launcher` runs the binary inside another command, e.g.
    /// `["/usr/sbin/ip", "netns", "exec", "NS"]` (which execs it: the pid
    /// stays the node's).
    init(_ arguments: [String], stderrPath: String, environment: [String: String?] = [:], launcher: [String] = []) throws {
        self.stderrPath = stderrPath
        if let first = launcher.first {
            process.executableURL = URL(fileURLWithPath: first)
            process.arguments = Array(launcher.dropFirst()) + [Self.binary] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: Self.binary)
            process.arguments = arguments
        }
        var merged = ProcessInfo.processInfo.environment
        // If this test process dies, the child (and its children) stop too.
        merged["ORDERLY_EXIT_WITH_PARENT"] = "1"
        for (key, value) in environment { merged[key] = value }
        process.environment = merged
        FileManager.default.createFile(atPath: stderrPath, contents: nil)
        let pipe = try ProcessLaunch.serialized {
            process.standardError = FileHandle(forWritingAtPath: stderrPath)
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            return pipe
        }
        // A thread reads stdout until the child closes it. Not
        // `readabilityHandler`: a dispatch source on the pipe that outlives
        // its descriptor (numbers are reused fast with this many children)
        // once crashed libdispatch's event loop in the test process.
        let handle = pipe.fileHandleForReading
        Thread { [output] in
            while true {
                let data = handle.availableData
                if data.isEmpty { return }
                output.withLock { $0 += String(decoding: data, as: UTF8.self) }
            }
        }.start()
    }

    deinit { stop(signal: SIGKILL) }

    var stdout: String { output.withLock { $0 } }

    /// Waits for the ready record and returns its `http` address.
    func waitReady(timeout: Duration = .seconds(180)) async throws -> String {
        try await readyRecord(timeout: timeout)["http"] as! String
    }

    /// Waits for the ready record and returns all its fields.
    func readyRecord(timeout: Duration = .seconds(180)) async throws -> [String: Any] {
        try await waitUntil("ready record from \(process.arguments ?? [])", timeout: timeout) {
            guard !self.stdout.isEmpty || self.process.isRunning else {
                throw TestFailure("process exited before it was ready; stderr:\n\(self.stderrTail())")
            }
            for line in self.stdout.split(separator: "\n") where line.contains("\"ready\":true") {
                return try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            }
            return nil
        }
    }

    func stderrTail() -> String {
        let text = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        return String(text.suffix(2000))
    }

    func signal(_ signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// Sends the signal and waits until Foundation has seen the process end:
    /// at most 30 s, then SIGKILL and at most 30 s more. Not
    /// `waitUntilExit`, which has no deadline: a local test run once stalled
    /// with a child left a zombie that Foundation had not reaped.
    func stop(signal: Int32 = SIGTERM) {
        self.signal(signal)
        guard process.processIdentifier > 0 else { return }
        for fallback in [Int32(SIGKILL), nil] {
            let end = ContinuousClock.now + .seconds(30)
            while process.isRunning && ContinuousClock.now < end { usleep(5_000) }
            guard process.isRunning else { return }
            if let fallback { kill(process.processIdentifier, fallback) }
        }
    }
}

/// Minimal JSON-over-HTTP for the tests.
enum HTTP {
    struct Reply {
        let status: Int
        let body: [String: Any]
    }

    static func send(
        _ method: HTTPMethod, _ url: String, _ json: String? = nil, headers: [String: String] = [:], timeout: Duration = .seconds(10),
        client: HTTPClient = .shared
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json))
        }
        let response = try await client.execute(request, timeout: .seconds(Int64(timeout.components.seconds)))
        let buffer = try await response.body.collect(upTo: 1 << 22)
        let body = (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any]) ?? [:]
        return Reply(status: Int(response.status.code), body: body)
    }

    /// A command POSTed as a client sends it: a 503 says retrying is safe
    /// (a command carries its id, so a repeat is recognised), so it is sent
    /// again until another answer comes, within a deadline. A loaded CI has
    /// answered 503 while no fault was injected: a node stopped leading an
    /// order for a moment (its membership loop ran late, two views
    /// disagreed on a leader). A retry of a command that was written after
    /// all is answered 200 (replayed) instead of 201. Tests of what a 503
    /// means send with `send`.
    static func command(_ url: String, _ json: String, deadline: Duration = .seconds(60)) async throws -> Reply {
        try await waitUntil("POST \(url) to be answered other than 503", timeout: deadline) {
            let reply = try await send(.POST, url, json)
            return reply.status == 503 ? nil : reply
        }
    }
}

extension HTTPMethodName {
    var nio: HTTPMethod {
        switch self {
        case .post: return .POST
        case .delete: return .DELETE
        }
    }
}
