import ArgumentParser
import Foundation

struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Launch a whole cluster on this machine and act on it.",
        subcommands: [ClusterUp.self, ClusterStatus.self, ClusterDown.self, ClusterKill.self, ClusterStart.self])
}

enum SignalName: String, ExpressibleByArgument, CaseIterable {
    case KILL, STOP, TERM, CONT
    var value: Int32 {
        switch self {
        case .KILL: return SIGKILL
        case .STOP: return SIGSTOP
        case .TERM: return SIGTERM
        case .CONT: return SIGCONT
        }
    }
}

func printTable(_ nodes: [ClusterNode]) {
    print("role      id         pid      http                   peer                   status")
    for node in nodes {
        let status: String = processAlive(node.pid) ? (processState(node.pid) == "T" ? "stopped" : "running") : "down"
        print([node.role.padding(8), node.id.padding(10), String(node.pid).padding(8), node.http.padding(22), (node.peer ?? "-").padding(22), status].joined(separator: " "))
    }
}

/// The process state letter from /proc (T when stopped).
func processState(_ pid: Int32) -> String? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return nil }
    return stat[stat.index(close, offsetBy: 2)...].split(separator: " ").first.map(String.init)
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}

struct ClusterUp: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Start a balancer, a warehouse, a stats node and N API nodes; Ctrl-C stops them all.",
        discussion: """
            Waits until every process is ready and every API node leads its orders, prints
            a table and writes DATA/cluster.json; each process logs to DATA/<id>/node.log.
            A cluster secret is generated into DATA/cluster.secret (it is also the admin
            token). Ctrl-C or SIGTERM stops every process gracefully. From another shell:
            orderly cluster status|down|kill ID|start ID --data DATA.
            """)

    @Option(help: "API nodes to start.")
    var apiNodes: Int = 3

    @Option(help: "Data folder of the cluster.")
    var data: String = "./cluster-data"

    @Option(help: "Balancer on this port, API nodes on +1.., peers on +101.., stats +90, warehouse +91; 0 picks free ports.")
    var basePort: Int = 8080

    func validate() throws {
        guard (1...9).contains(apiNodes) else { throw ValidationError("--api-nodes must be 1-9") }
        guard basePort == 0 || (1024...65000).contains(basePort) else { throw ValidationError("--base-port must be 0 or 1024-65000") }
    }

    func run() async throws {
        let launcher = try ClusterLauncher(data: data, apiNodes: apiNodes, basePort: basePort)
        // Stop everything on Ctrl-C or SIGTERM, even while starting.
        let stop = AsyncStream<Int32> { continuation in
            for signalNumber in [SIGINT, SIGTERM] {
                signal(signalNumber, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: signalNumber)
                source.setEventHandler { continuation.yield(signalNumber) }
                source.resume()
                SignalSources.keep(source)
            }
        }
        let starting = Task {
            try await launcher.up { FileHandle.standardError.write(Data("\($0)\n".utf8)) }
        }
        let waiting = Task { for await _ in stop { return } }
        do {
            try await starting.value
        } catch {
            launcher.down()
            throw error
        }
        printTable(launcher.file.nodes)
        print("cluster.json: \(ClusterFile.path(launcher.data))   balancer: http://\(launcher.file.nodes.first { $0.role == "balancer" }?.http ?? "")")
        print("Ctrl-C stops the cluster.")
        fflush(nil)
        await waiting.value
        FileHandle.standardError.write(Data("stopping the cluster\n".utf8))
        launcher.down()
    }
}

/// Keeps signal sources alive for the life of the process.
enum SignalSources {
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []
    static func keep(_ source: any DispatchSourceSignal) { sources.append(source) }
}

struct ClusterStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show the processes of a running cluster.")

    @Option(help: "Data folder of the cluster.")
    var data: String = "./cluster-data"

    func run() async throws {
        let file = try ClusterFile.read(data)
        printTable(file.nodes)
    }
}

struct ClusterDown: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "down", abstract: "Stop every process of a running cluster.")

    @Option(help: "Data folder of the cluster.")
    var data: String = "./cluster-data"

    func run() async throws {
        let file = try ClusterFile.read(data)
        if processAlive(file.supervisorPID) && file.supervisorPID != ProcessInfo.processInfo.processIdentifier {
            kill(file.supervisorPID, SIGTERM)
        }
        for node in file.nodes where processAlive(node.pid) {
            kill(node.pid, SIGCONT)
            kill(node.pid, SIGTERM)
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while file.nodes.contains(where: { processAlive($0.pid) }) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        for node in file.nodes where processAlive(node.pid) { kill(node.pid, SIGKILL) }
        try? FileManager.default.removeItem(atPath: ClusterFile.path(data))
        print("stopped \(file.nodes.count) processes")
    }
}

struct ClusterKill: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kill", abstract: "Send a signal to one process of a running cluster.")

    @Argument(help: "Node id (see `cluster status`).")
    var id: String

    @Option(help: "KILL, STOP, TERM or CONT.")
    var signal: SignalName = .KILL

    @Option(help: "Data folder of the cluster.")
    var data: String = "./cluster-data"

    func run() async throws {
        let file = try ClusterFile.read(data)
        guard let node = file.nodes.first(where: { $0.id == id }) else {
            throw ValidationError("no node \(id); the cluster has \(file.nodes.map(\.id).joined(separator: ", "))")
        }
        guard processAlive(node.pid) else { throw ValidationError("\(id) is not running") }
        kill(node.pid, signal.value)
        print("sent SIG\(signal.rawValue) to \(id) (pid \(node.pid))")
    }
}

struct ClusterStart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Start a stopped process of a running cluster again.")

    @Argument(help: "Node id (see `cluster status`).")
    var id: String

    @Option(help: "Data folder of the cluster.")
    var data: String = "./cluster-data"

    func run() async throws {
        let node = try await ClusterControl.restart(id, data: data)
        print("started \(id) (pid \(node.pid), http \(node.http))")
    }
}

/// Acting on a running cluster from any process, through its cluster.json.
enum ClusterControl {
    /// Starts a stopped node again with its recorded arguments.
    static func restart(_ id: String, data: String) async throws -> ClusterNode {
        var file = try ClusterFile.read(data)
        guard let index = file.nodes.firstIndex(where: { $0.id == id }) else {
            throw ValidationError("no node \(id); the cluster has \(file.nodes.map(\.id).joined(separator: ", "))")
        }
        let node = file.nodes[index]
        guard !processAlive(node.pid) else { throw ValidationError("\(id) runs (pid \(node.pid))") }
        // This command ends as soon as the node serves: the node must not
        // end with it (as children of `cluster up` end with their supervisor).
        var environment = ClusterLauncher.environment(data: file.data)
        environment[ParentWatch.variable] = nil
        let child = ChildProcess(
            arguments: ClusterLauncher.rejoining(node, in: file.nodes), stderrPath: node.log, appendingLog: true, environment: environment)
        try child.start()
        _ = try await child.waitReady()
        file.nodes[index].pid = child.pid
        try file.write()
        return file.nodes[index]
    }

    /// Sends a signal to a node.
    static func signal(_ id: String, _ signal: Int32, data: String) throws {
        let file = try ClusterFile.read(data)
        guard let node = file.nodes.first(where: { $0.id == id }) else { throw ValidationError("no node \(id) in the cluster on \(data)") }
        guard processAlive(node.pid) else { throw ValidationError("\(id) is not running") }
        kill(node.pid, signal)
    }
}

