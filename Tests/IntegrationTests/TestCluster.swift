import AsyncHTTPClient
import EventLog
import Foundation
import PeerTLS
import Testing

/// The cluster certificates of a test's data folder (FOLDER/certs, where a
/// node started with --data FOLDER finds them), with one for each id.
@discardableResult
func testCertificates(in folder: String, for ids: [String]) throws -> String {
    let certs = (folder as NSString).appendingPathComponent("certs")
    try ClusterCertificates(folder: certs).initialize(nodes: ids)
    return certs
}

/// Real `orderly node` processes forming one cluster on port 0, in one
/// temp folder. Every process is stopped when the cluster is, even when the
/// test fails.
final class TestCluster: @unchecked Sendable {
    /// A secret of this cluster's own: tests run side by side, and a port one
    /// cluster let go of is soon another's. With one secret for all, a
    /// process that dials a stale address (a restarted node's old port)
    /// would be let into another test's cluster.
    /// Its TLS certificates (one CA per cluster, in the folder) too.
    let environment: [String: String?]
    static let adminToken = "integration-test-admin-token"

    let folder: TemporaryFolder
    let extraArguments: [String]
    private let nodes = Locked<[String: (process: OrderlyProcess, http: String, peer: String)]>([:])
    private let starts = Locked(0)

    init(extraArguments: [String] = []) throws {
        folder = try TemporaryFolder()
        self.extraArguments = extraArguments
        let certs = try testCertificates(in: folder.path, for: (1...5).map { "api-\($0)" } + ["stats", "wms", "balancer"])
        environment = [
            "ORDERLY_CLUSTER_SECRET": "integration-test-cluster-secret-\(UUID().uuidString)",
            "ORDERLY_ADMIN_TOKEN": TestCluster.adminToken,
            "ORDERLY_CERTS": certs,
        ]
    }

    deinit {
        stopAll(signal: SIGKILL)
        if let client = madeHTTPSClient.value { try? client.syncShutdown() }
    }

    var ids: [String] { nodes.value.keys.sorted() }
    func http(_ id: String) -> String { nodes.value[id]!.http }
    func peer(_ id: String) -> String { nodes.value[id]!.peer }
    func process(_ id: String) -> OrderlyProcess { nodes.value[id]!.process }

    /// Starts (or restarts) a node, joining through the peers already running.
    @discardableResult
    func start(_ id: String, extra: [String] = []) async throws -> String {
        let seeds = nodes.value.filter { $0.key != id && $0.value.process.process.isRunning }.map(\.value.peer).sorted()
        var arguments = ["node", "--id", id, "--data", folder.path, "--http", "127.0.0.1:0", "--peer", "127.0.0.1:0"] + extraArguments + extra
        if !seeds.isEmpty { arguments += ["--seeds", seeds.joined(separator: ",")] }
        let run = starts.withLock { $0 += 1; return $0 }
        try testCertificates(in: folder.path, for: [id])
        let process = try OrderlyProcess(arguments, stderrPath: folder.file("\(id)-\(run).log"), environment: environment)
        let ready = try await process.readyRecord()
        let http = ready["http"] as! String
        nodes.withLock { $0[id] = (process, http, ready["peer"] as! String) }
        return http
    }

    func stop(_ id: String, signal: Int32 = SIGTERM) {
        nodes.value[id]?.process.stop(signal: signal)
    }

    /// Starts a role that reads from the cluster (stats, wms, balancer) with
    /// every node's peer address as seeds; its stderr goes to `log`. The
    /// caller stops it (deinit does too).
    func startRole(_ arguments: [String], log: String) async throws -> (process: OrderlyProcess, http: String) {
        let seeds = ids.map { peer($0) }.joined(separator: ",")
        let process = try OrderlyProcess(arguments + ["--seeds", seeds], stderrPath: folder.file(log), environment: environment)
        return (process, try await process.waitReady())
    }

    /// Stops a node for good: it leaves the ids the other helpers walk.
    func remove(_ id: String, signal: Int32 = SIGTERM) {
        guard let node = nodes.withLock({ $0.removeValue(forKey: id) }) else { return }
        node.process.stop(signal: signal)
        removed.withLock { $0.append(node.process) }
    }
    private let removed = Locked<[OrderlyProcess]>([])

    func stopAll(signal: Int32 = SIGTERM) {
        for process in removed.value { process.stop(signal: signal) }
        for node in nodes.value.values { node.process.stop(signal: signal) }
    }

    /// An HTTPS client that trusts this cluster's CA (for nodes started
    /// with --tls-cert).
    var httpsClient: HTTPClient {
        madeHTTPSClient.withLock { made in
            if let made { return made }
            let tls = try! HTTPSConfiguration.client(trusting: folder.file("certs/ca.pem"))
            made = HTTPClient(configuration: .init(tlsConfiguration: tls))
            return made!
        }
    }
    private let madeHTTPSClient = Locked<HTTPClient?>(nil)

    func client(_ scheme: String) -> HTTPClient { scheme == "https" ? httpsClient : .shared }

    func statuses(via id: String, scheme: String = "http") async throws -> [String: String] {
        let members = try await HTTP.send(.GET, "\(scheme)://\(http(id))/cluster", client: client(scheme)).body["members"] as? [[String: Any]] ?? []
        return Dictionary(uniqueKeysWithValues: members.compactMap { member in
            (member["id"] as? String).map { ($0, member["status"] as? String ?? "?") }
        })
    }

    /// Waits until every running node sees `expected` (id: status) for these
    /// ids and those expected alive lead their orders (every peer sees them).
    func waitForView(_ expected: [String: String], on ids: [String], timeout: Duration = .seconds(30), scheme: String = "http") async throws {
        for id in ids {
            try await waitFor("\(id) to see \(expected)", timeout: timeout) {
                let seen = try await statuses(via: id, scheme: scheme)
                return expected.allSatisfy { seen[$0.key] == $0.value }
            }
        }
        for id in ids where expected[id] == "alive" {
            try await waitFor("\(id) to lead its orders", timeout: timeout) {
                try await HTTP.send(.GET, "\(scheme)://\(http(id))/cluster", client: client(scheme)).body["leading"] as? Bool == true
            }
        }
    }

    /// Waits until every node holds every other node's log up to its end.
    /// On a timeout the error says how far each copy got.
    func waitForReplicasToCatchUp(timeout: Duration = .seconds(30)) async throws {
        var last = ""
        do {
            try await waitFor("every copy to reach its origin's end", timeout: timeout) {
                var own: [String: Int64] = [:]
                var copies: [String: [String: Int64]] = [:]
                for id in ids {
                    let origins = try await HTTP.send(.GET, "http://\(http(id))/cluster").body["replication"] as? [String: Any]
                    for origin in origins?["origins"] as? [[String: Any]] ?? [] {
                        let name = origin["origin"] as? String ?? ""
                        if name == id { own[id] = (origin["last_offset"] as? NSNumber)?.int64Value ?? -1 }
                        else if let follower = (origin["followers"] as? [[String: Any]])?.first {
                            copies[id, default: [:]][name] = (follower["position"] as? NSNumber)?.int64Value ?? -1
                        }
                    }
                }
                last = "own logs end at \(own.sorted { $0.key < $1.key }), copies at \(copies.sorted { $0.key < $1.key })"
                return ids.allSatisfy { id in
                    ids.filter { $0 != id }.allSatisfy { origin in (own[origin] ?? 0) == 0 || copies[id]?[origin] == own[origin] }
                }
            }
        } catch {
            throw TestFailure("\(error); \(last)")
        }
    }

    func admin(_ id: String, _ method: HTTPMethodName, _ body: String? = nil) async throws -> HTTP.Reply {
        try await HTTP.send(method.nio, "http://\(http(id))/admin/partition", body, headers: ["Authorization": "Bearer \(Self.adminToken)"])
    }

    func log(_ id: String) throws -> EventLog {
        try EventLog.openReadOnly(path: EventLog.path(data: folder.path, node: id))
    }
}

enum HTTPMethodName {
    case post, delete
}
