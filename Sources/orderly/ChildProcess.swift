import Foundation
import ProcessLaunch

/// A child `orderly` process whose stdout carries the one-line ready record.
/// Its stderr goes to a file (or is inherited) so logs never block it.
final class ChildProcess: @unchecked Sendable {
    struct Ready: Sendable {
        let line: String
        let http: String
    }

    enum Failure: Error, CustomStringConvertible {
        case exitedBeforeReady(status: Int32)
        case notReadyInTime(seconds: Double)

        var description: String {
            switch self {
            case .exitedBeforeReady(let status): return "the process exited (status \(status)) before it was ready"
            case .notReadyInTime(let seconds): return "the process was not ready within \(seconds) s"
            }
        }
    }

    let process = Process()
    private let lock = NSLock()
    private var readyContinuation: CheckedContinuation<Ready, any Error>?
    private var ready: Ready?
    private var failed = false

    /// The path of the running executable, to start siblings of this process.
    static var selfExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    init(arguments: [String], stderrPath: String? = nil, appendingLog: Bool = false, environment: [String: String]? = nil) {
        process.executableURL = URL(fileURLWithPath: Self.selfExecutable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let stderrPath {
            if !appendingLog || !FileManager.default.fileExists(atPath: stderrPath) {
                _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
            }
            let handle = FileHandle(forWritingAtPath: stderrPath)
            handle?.seekToEndOfFile()
            process.standardError = handle
        }
    }

    var pid: Int32 { process.processIdentifier }

    /// Starts the process; `waitReady` then returns its ready record.
    func start() throws {
        process.terminationHandler = { [weak self] process in
            self?.finish(with: .failure(Failure.exitedBeforeReady(status: process.terminationStatus)))
        }
        let pipe = try ProcessLaunch.serialized {
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            return pipe
        }
        let handle = pipe.fileHandleForReading
        let thread = Thread { [weak self] in
            var buffer = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { return }
                buffer.append(chunk)
                while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                    buffer.removeSubrange(buffer.startIndex...newline)
                    if line.contains("\"ready\":true"), let http = Self.field("http", in: line) {
                        self?.finish(with: .success(Ready(line: line, http: http)))
                    }
                }
            }
        }
        thread.start()
    }

    static func field(_ name: String, in line: String) -> String? {
        guard let data = line.data(using: .utf8),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return object[name] as? String
    }

    private func finish(with result: Result<Ready, any Error>) {
        lock.lock()
        if case .success(let value) = result { ready = value } else { failed = true }
        let continuation = readyContinuation
        readyContinuation = nil
        lock.unlock()
        continuation?.resume(with: result)
    }

    /// Waits for the ready record, at most `timeout`.
    func waitReady(timeout: Duration = .seconds(60)) async throws -> Ready {
        let timer = Task {
            try await Task.sleep(for: timeout)
            let (seconds, attoseconds) = timeout.components
            self.finish(with: .failure(Failure.notReadyInTime(seconds: Double(seconds) + Double(attoseconds) / 1e18)))
        }
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { continuation in
            lock.lock()
            if let ready {
                lock.unlock()
                continuation.resume(returning: ready)
            } else if failed {
                lock.unlock()
                continuation.resume(throwing: Failure.exitedBeforeReady(status: process.isRunning ? -1 : process.terminationStatus))
            } else {
                readyContinuation = continuation
                lock.unlock()
            }
        }
    }

    func signal(_ signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// Sends the signal and waits for the process to end: at most
    /// `timeout`, then SIGKILL and at most as long again.
    func stop(signal: Int32 = SIGTERM, timeout: Duration = .seconds(30)) {
        self.signal(signal)
        if waitForExit(timeout: timeout) || signal == SIGKILL { return }
        self.signal(SIGKILL)
        _ = waitForExit(timeout: timeout)
    }

    /// Whether the process ended within `timeout` (as Foundation saw it).
    /// Not `waitUntilExit`, which has no deadline and blocks on Foundation
    /// seeing the end: a demo that hangs there never says why.
    func waitForExit(timeout: Duration) -> Bool {
        let end = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < end { usleep(5_000) }
        return !process.isRunning
    }
}
