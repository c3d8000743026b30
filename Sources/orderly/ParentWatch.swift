import Foundation

/// With `ORDERLY_EXIT_WITH_PARENT=1` in its environment (the integration
/// tests set it), a process stops once the process that started it is gone,
/// so a test run that crashes or is killed leaves no node behind. It polls
/// `getppid()`, which changes when the parent dies and the process is
/// re-parented, then sends itself SIGTERM (every role's graceful stop; `cluster
/// up` stops its nodes) and exits 10 s later if that has not ended it. The
/// variable is inherited, so the nodes of a `cluster up` watch their launcher.
enum ParentWatch {
    static let variable = "ORDERLY_EXIT_WITH_PARENT"

    static func startIfAsked() {
        guard ProcessInfo.processInfo.environment[variable] == "1" else { return }
        let parent = getppid()
        let thread = Thread {
            while getppid() == parent { usleep(200_000) }
            FileHandle.standardError.write(Data("orderly: parent process \(parent) is gone; stopping\n".utf8))
            kill(getpid(), SIGTERM)
            sleep(10)
            _exit(1)
        }
        thread.name = "orderly-parent-watch"
        thread.start()
    }
}
