import Foundation
import ProcessLaunch

/// The `orderly` binary next to the test bundle (SwiftPM builds it for the
/// test run), or `ORDERLY_BIN`.
public enum OrderlyBinary {
    public static var path: String {
        if let path = ProcessInfo.processInfo.environment["ORDERLY_BIN"] { return path }
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("orderly").path
    }

    /// Runs `orderly` with `arguments` to its end (killed after `timeout`),
    /// and returns its exit status and what it printed.
    public static func run(_ arguments: [String], timeout: Duration = .seconds(600)) async throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["ORDERLY_EXIT_WITH_PARENT"] = "1"
        process.environment = environment
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("orderly-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let out = folder.appendingPathComponent("stdout")
        let err = folder.appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        try ProcessLaunch.run(process) {
            process.standardOutput = try FileHandle(forWritingTo: out)
            process.standardError = try FileHandle(forWritingTo: err)
        }
        do {
            try await waitFor("orderly \(arguments.joined(separator: " ")) to end", timeout: timeout) { !process.isRunning }
        } catch {
            process.terminate()
            throw error
        }
        process.waitUntilExit()
        return (process.terminationStatus, try String(contentsOf: out, encoding: .utf8), try String(contentsOf: err, encoding: .utf8))
    }
}
