import AsyncHTTPClient
import Foundation
import NIOCore
import PeerTLS

/// One process of a launched cluster, as `cluster.json` records it.
struct ClusterNode: Codable, Sendable {
    var role: String
    var id: String
    var pid: Int32
    var http: String
    var peer: String?
    var arguments: [String]
    var log: String
}

/// `DATA/cluster.json`: what `cluster up` started, for `status`, `down`,
/// `kill`, `start` and `simulate --failures` from other shells.
struct ClusterFile: Codable, Sendable {
    var supervisorPID: Int32
    var data: String
    var nodes: [ClusterNode]

    static func path(_ data: String) -> String { (data as NSString).appendingPathComponent("cluster.json") }

    static func read(_ data: String) throws -> ClusterFile {
        guard let bytes = FileManager.default.contents(atPath: path(data)) else {
            throw LaunchError("no cluster.json in \(data): start one with `orderly cluster up --data \(data)`")
        }
        do {
            return try JSONDecoder().decode(ClusterFile.self, from: bytes)
        } catch {
            throw LaunchError("\(path(data)) is not a cluster file: \(error)")
        }
    }

    func write() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let temporary = Self.path(data) + ".tmp"
        try encoder.encode(self).write(to: URL(fileURLWithPath: temporary))
        _ = rename(temporary, Self.path(data))
    }
}

struct LaunchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func processAlive(_ pid: Int32) -> Bool { pid > 0 && kill(pid, 0) == 0 }

/// Starts the processes of a cluster (API nodes, stats, warehouse,
/// balancer) as children of this one, each logging to `DATA/<id>/node.log`.
final class ClusterLauncher: @unchecked Sendable {
    let data: String
    let apiNodes: Int
    let basePort: Int
    let environment: [String: String]
    private(set) var children: [String: ChildProcess] = [:]
    private(set) var file: ClusterFile
    private let lock = NSLock()

    init(data: String, apiNodes: Int, basePort: Int) throws {
        self.data = (data as NSString).standardizingPath
        self.apiNodes = apiNodes
        self.basePort = basePort
        try FileManager.default.createDirectory(atPath: self.data, withIntermediateDirectories: true)
        if let existing = try? ClusterFile.read(self.data), processAlive(existing.supervisorPID) || existing.nodes.contains(where: { processAlive($0.pid) }) {
            throw LaunchError("a cluster already runs on \(self.data) (supervisor pid \(existing.supervisorPID)); stop it with `orderly cluster down --data \(self.data)`")
        }
        // A secret for this cluster's peer protocol and admin routes.
        let secretPath = Self.secretPath(self.data)
        if FileManager.default.contents(atPath: secretPath).map({ $0.count < 32 }) ?? true {
            let secret = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
            FileManager.default.createFile(atPath: secretPath, contents: Data(secret.utf8), attributes: [.posixPermissions: 0o600])
        }
        // TLS for every peer link: the CA and each process's certificate.
        try ClusterCertificates(folder: Self.certsPath(self.data)).initialize(
            nodes: (1...apiNodes).map { "api-\($0)" } + ["stats", "wms", "balancer"])
        self.environment = Self.environment(data: self.data)
        file = ClusterFile(supervisorPID: ProcessInfo.processInfo.processIdentifier, data: self.data, nodes: [])
    }

    private func port(_ offset: Int) -> String { basePort == 0 ? "0" : "\(basePort + offset)" }

    /// Starts everything and waits until every process is ready and every
    /// API node leads its orders.
    func up(progress: (String) -> Void = { _ in }) async throws {
        var peers: [String] = []
        for index in 1...apiNodes {
            let id = "api-\(index)"
            var arguments = [
                "node", "--id", id, "--data", data, "--http", "127.0.0.1:\(port(index))", "--peer", "127.0.0.1:\(port(100 + index))",
                "--event-loops", "\(eventLoopsPerNode(sharing: apiNodes))",
            ]
            if let first = peers.first { arguments += ["--seeds", first] }
            let node = try await start(role: "api", id: id, arguments: arguments)
            peers.append(node.peer ?? "")
            progress("started \(id) (http \(node.http), peer \(node.peer ?? ""))")
        }
        let seeds = peers.joined(separator: ",")
        let stats = try await start(role: "stats", id: "stats", arguments: ["stats", "--data", data, "--http", "127.0.0.1:\(port(90))", "--seeds", seeds])
        progress("started stats (http \(stats.http))")
        let wms = try await start(role: "wms", id: "wms", arguments: [
            "wms", "--data", data, "--http", "127.0.0.1:\(port(91))", "--seeds", seeds, "--handling-time", "500ms",
        ])
        progress("started wms (http \(wms.http))")
        let balancer = try await start(role: "balancer", id: "balancer", arguments: [
            "balancer", "--http", "127.0.0.1:\(port(0))", "--seeds", seeds, "--stats", stats.http, "--strategy", "ring",
        ])
        progress("started balancer (http \(balancer.http))")
        try await waitUntilServing()
    }

    /// Every API node leads its orders, and the balancer sees them all.
    func waitUntilServing(timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        for node in file.nodes where node.role == "api" {
            while await !(Self.getJSON("http://\(node.http)/cluster")?["leading"] as? Bool ?? false) {
                guard ContinuousClock.now < deadline else { throw LaunchError("\(node.id) does not lead its orders after \(timeout)") }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        if let balancer = file.nodes.first(where: { $0.role == "balancer" }) {
            let apis = file.nodes.filter { $0.role == "api" && processAlive($0.pid) }.count
            while true {
                let backends = await Self.getJSON("http://\(balancer.http)/balancer")?["backends"] as? [[String: Any]] ?? []
                if backends.filter({ $0["state"] as? String == "healthy" }).count >= apis { break }
                guard ContinuousClock.now < deadline else { throw LaunchError("the balancer does not see every API node after \(timeout)") }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    static func secretPath(_ data: String) -> String { (data as NSString).appendingPathComponent("cluster.secret") }

    static func certsPath(_ data: String) -> String { (data as NSString).appendingPathComponent("certs") }

    /// The environment of the cluster's processes: this one's, with the
    /// cluster's secret (also the admin token) and its certificates.
    static func environment(data: String) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["ORDERLY_CERTS"] = certsPath(data)
        if let secret = FileManager.default.contents(atPath: secretPath(data)) {
            environment["ORDERLY_CLUSTER_SECRET"] = String(decoding: secret, as: UTF8.self)
            environment["ORDERLY_ADMIN_TOKEN"] = environment["ORDERLY_CLUSTER_SECRET"]
        }
        return environment
    }

    /// The JSON object at `url`, or nil when it does not answer 200.
    static func getJSON(_ url: String, timeout: Duration = .seconds(2)) async -> [String: Any]? {
        guard let response = try? await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(timeout.components.seconds)),
            response.status == .ok,
            let body = try? await response.body.collect(upTo: 64 << 20)
        else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]
    }

    private func start(role: String, id: String, arguments: [String]) async throws -> ClusterNode {
        let folder = (data as NSString).appendingPathComponent(id)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let log = (folder as NSString).appendingPathComponent("node.log")
        let child = ChildProcess(arguments: arguments, stderrPath: log, appendingLog: true, environment: environment)
        try child.start()
        let ready = try await child.waitReady()
        let node = ClusterNode(
            role: role, id: id, pid: child.pid, http: ready.http, peer: ChildProcess.field("peer", in: ready.line),
            arguments: Self.pinned(arguments, http: ready.http, peer: ChildProcess.field("peer", in: ready.line)), log: log)
        lock.withLock {
            children[id] = child
            file.nodes.removeAll { $0.id == id }
            file.nodes.append(node)
        }
        try file.write()
        return node
    }

    /// The arguments with the addresses the process got, so a restart keeps them.
    static func pinned(_ arguments: [String], http: String, peer: String?) -> [String] {
        var result = arguments
        if let index = result.firstIndex(of: "--http") { result[index + 1] = http }
        if let peer, let index = result.firstIndex(of: "--peer") { result[index + 1] = peer }
        return result
    }

    /// Restarts a node that was stopped, with its recorded arguments.
    func restart(_ id: String) async throws -> ClusterNode {
        guard let node = file.nodes.first(where: { $0.id == id }) else { throw LaunchError("no node \(id) in this cluster") }
        guard !processAlive(node.pid) else { throw LaunchError("\(id) runs (pid \(node.pid))") }
        return try await start(role: node.role, id: id, arguments: Self.rejoining(node, in: file.nodes))
    }

    /// An API node's arguments for a restart, seeded with every other API
    /// node: the first node of `up` had no seeds, and once it has left
    /// (SIGTERM) its peers no longer talk to it, so without seeds it would
    /// wait to join for ever.
    static func rejoining(_ node: ClusterNode, in nodes: [ClusterNode]) -> [String] {
        guard node.role == "api" else { return node.arguments }
        let peers = nodes.filter { $0.role == "api" && $0.id != node.id }.compactMap(\.peer).filter { !$0.isEmpty }
        guard !peers.isEmpty else { return node.arguments }
        var arguments = node.arguments
        if let index = arguments.firstIndex(of: "--seeds"), index + 1 < arguments.count {
            arguments.removeSubrange(index...(index + 1))
        }
        return arguments + ["--seeds", peers.joined(separator: ",")]
    }

    func signal(_ id: String, _ signal: Int32) throws {
        guard let node = file.nodes.first(where: { $0.id == id }) else { throw LaunchError("no node \(id) in this cluster") }
        guard processAlive(node.pid) else { throw LaunchError("\(id) is not running") }
        kill(node.pid, signal)
        if signal == SIGKILL || signal == SIGTERM, let child = lock.withLock({ children[id] }), !child.waitForExit(timeout: .seconds(30)) {
            throw LaunchError("\(id) (pid \(node.pid)) did not end within 30 s of signal \(signal)")
        }
    }

    /// Stops every process, the balancer first and the API nodes last.
    func down() {
        let order = ["balancer", "wms", "stats"] + file.nodes.filter { $0.role == "api" }.map(\.id).reversed()
        for id in order {
            guard let node = file.nodes.first(where: { $0.id == id }) else { continue }
            if processAlive(node.pid) { kill(node.pid, SIGCONT); kill(node.pid, SIGTERM) }
            // A process that does not end on SIGTERM within 30 s is killed:
            // `down` always returns.
            if let child = lock.withLock({ children[id] }), !child.waitForExit(timeout: .seconds(30)) {
                FileHandle.standardError.write(Data("\(id) did not stop within 30 s of SIGTERM; sending SIGKILL\n".utf8))
                kill(node.pid, SIGKILL)
                _ = child.waitForExit(timeout: .seconds(10))
            }
        }
        try? FileManager.default.removeItem(atPath: ClusterFile.path(data))
    }
}
