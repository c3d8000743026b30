import Foundation
import ProcessLaunch
import Testing

/// A test run that crashes must not leave nodes running: with
/// ORDERLY_EXIT_WITH_PARENT=1 (which OrderlyProcess sets), a node whose
/// parent dies stops itself.
@Suite struct ParentWatchTests {
    /// Gone, or a zombie nobody reaped (re-parented to an init that does not wait).
    static func isGone(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return true }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    @Test func aNodeWhoseParentDiesStopsItself() async throws {
        let folder = try TemporaryFolder()
        let ready = folder.file("ready.json")
        // A shell starts the node, then is SIGKILLed as a crashed test run would be.
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = [
            "-c", #""$0" node --id api-1 --data "$1" --http 127.0.0.1:0 > "$2" 2> "$2.log" & wait"#,
            OrderlyProcess.binary, folder.path, ready,
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["ORDERLY_EXIT_WITH_PARENT"] = "1"
        shell.environment = environment
        try ProcessLaunch.run(shell)
        defer { if shell.isRunning { kill(shell.processIdentifier, SIGKILL) } }

        let pid = try await waitUntil("the node's ready record") { () -> Int32? in
            guard let text = try? String(contentsOfFile: ready, encoding: .utf8), let line = text.split(separator: "\n").first,
                let record = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            else { return nil }
            return (record["pid"] as? Int).map { Int32($0) }
        }
        defer { kill(pid, SIGKILL) }  // never left behind, even if this test fails
        #expect(!Self.isGone(pid))

        // Not waitUntilExit: Foundation learns of the exit through a socket
        // the node inherited, so it would wait for the node too.
        kill(shell.processIdentifier, SIGKILL)
        try await waitFor("the node to stop once its parent is gone", timeout: .seconds(20)) { Self.isGone(pid) }
        let log = (try? String(contentsOfFile: ready + ".log", encoding: .utf8)) ?? ""
        #expect(log.contains("is gone; stopping"), "\(log.suffix(500))")
    }
}
