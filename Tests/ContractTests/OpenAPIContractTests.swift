import EventLog
import Foundation
import HTTPAPI
import Hummingbird
import HummingbirdTesting
import Logging
import Membership
import BalancerCore
import NIOCore
import NIOEmbedded
import Node
import OrderDomain
import Prometheus
import Stats
import Testing
import Warehouse
import Wire

@testable import Balancer

/// `docs/openapi.yaml` is the HTTP contract of every role: its paths are
/// exactly the routes each role's router serves, every role serves it at
/// `GET /openapi.yaml`, and the binary carries the file as it is.
/// (`.ci/run` fuzzes live nodes and the balancer against it with
/// schemathesis: `tools/api-contract`.)
@Suite struct OpenAPIContractTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let specFile = root.appendingPathComponent("docs/openapi.yaml")

    /// `METHOD /path` of every operation of the spec, by tag (the role).
    static func operations() throws -> [String: Set<String>] {
        let text = try String(contentsOf: specFile, encoding: .utf8)
        var byTag: [String: Set<String>] = [:]
        var inPaths = false
        var path: String?
        var operation: String?
        var inTags = false
        let methods: Set<String> = ["get", "post", "put", "delete", "patch", "head", "options"]
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = String(raw)
            let indent = line.prefix { $0 == " " }.count
            let content = line.trimmingCharacters(in: .whitespaces)
            if content.isEmpty || content.hasPrefix("#") { continue }
            if indent == 0 {
                inPaths = content == "paths:"
                continue
            }
            guard inPaths else { continue }
            if indent == 2 {
                path = content.trimmingCharacters(in: CharacterSet(charactersIn: "\"':"))
                operation = nil
                inTags = false
            } else if indent == 4 {
                let key = String(content.dropLast())
                operation = content.hasSuffix(":") && methods.contains(key) ? "\(key.uppercased()) \(path ?? "?")" : nil
                inTags = false
            } else if let current = operation, indent == 6 {
                inTags = false
                guard content.hasPrefix("tags:") else { continue }
                let inline = content.dropFirst("tags:".count).trimmingCharacters(in: .whitespaces)
                if inline.isEmpty {
                    inTags = true
                } else {
                    for tag in inline.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).split(separator: ",") {
                        byTag[tag.trimmingCharacters(in: .whitespaces), default: []].insert(current)
                    }
                }
            } else if let current = operation, inTags, indent == 8, content.hasPrefix("- ") {
                byTag[content.dropFirst(2).trimmingCharacters(in: .whitespaces), default: []].insert(current)
            }
        }
        return byTag
    }

    /// A router's routes as `METHOD /path`, with `{name}` for `:name`.
    static func routes(_ router: Router<BasicRequestContext>) -> Set<String> {
        Set(router.routes.map { route in
            let path = "\(route.path)".split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }
            return "\(route.method.rawValue) /\(path.joined(separator: "/"))"
        })
    }

    static func folder() -> String {
        (NSTemporaryDirectory() as NSString).appendingPathComponent("orderly-contract-\(UUID().uuidString)")
    }

    static let logger = Logger(label: "contract")
    static func clients(_ id: String) -> PeerClients {
        PeerClients(security: HandshakeConfig(cluster: "t", nodeID: id, secret: nil), logger: logger)
    }

    /// The api node's router as `orderly node` builds it in a cluster, with
    /// an admin token (so its admin routes are on).
    static func apiRouter(_ folder: String) throws -> (Router<BasicRequestContext>, OrderEngine) {
        let log = try EventLog.open(data: folder, node: "api-1")
        let engine = OrderEngine(log: log, catalog: .standard, config: EngineConfig(nodeID: "api-1"), clock: SystemClock())
        let membership = ClusterMembership(
            self: Member(id: "api-1", http: "127.0.0.1:8081", peer: "127.0.0.1:7081", incarnation: 1),
            config: MembershipConfig(), replicationFactor: 3, network: clients("api-1"), environment: .system(), logger: logger)
        let router = APIServer.router(
            service: engine, membership: membership, adminToken: "t", feeds: .standalone(log: log, nodeID: "api-1", logger: logger),
            registry: PrometheusCollectorRegistry())
        return (router, engine)
    }

    static func statsRouter(_ folder: String) throws -> Router<BasicRequestContext> {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let store = try StatsStore(path: (folder as NSString).appendingPathComponent("stats.sqlite"))
        let tail = LogTail(sink: store, clients: clients("stats"), config: .init(seeds: []), id: "stats", logger: logger)
        let rebuild = OnlineRebuild(store: store, clients: clients("stats"), config: .init(seeds: []), id: "stats", logger: logger)
        let router = Router()
        StatsRoutes(store: store, follower: tail, rebuild: rebuild, adminToken: "t").register(on: router)
        APIServer.addHealthAndMetrics(to: router, registry: PrometheusCollectorRegistry()) { true }
        return router
    }

    static func warehouseRouter(_ folder: String) throws -> Router<BasicRequestContext> {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let store = try WarehouseStore(path: (folder as NSString).appendingPathComponent("wms.sqlite"), catalog: .standard)
        let tail = LogTail(sink: store, clients: clients("wms"), config: .init(seeds: []), id: "wms", logger: logger)
        let router = Router()
        WarehouseRoutes(store: store, tail: tail, adminToken: "t").register(on: router)
        APIServer.addHealthAndMetrics(to: router, registry: PrometheusCollectorRegistry()) { true }
        return router
    }

    @Test func theSpecsPathsAreExactlyTheRoutesOfEachRole() async throws {
        let spec = try Self.operations()
        let folder = Self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let (api, engine) = try Self.apiRouter((folder as NSString).appendingPathComponent("api"))
        defer { Task { await engine.shutdown() } }
        let apiRoutes = Self.routes(api)
        let statsRoutes = Self.routes(try Self.statsRouter((folder as NSString).appendingPathComponent("stats")))
        // The balancer answers its own routes and proxies the rest: /stats
        // paths to the stats node, everything else to the API nodes.
        let proxied = apiRoutes.union(statsRoutes.filter { Balancer.goesToStats($0.split(separator: " ")[1]) })
        let roles: [(tag: String, routes: Set<String>)] = [
            ("api", apiRoutes),
            ("stats", statsRoutes),
            ("warehouse", Self.routes(try Self.warehouseRouter((folder as NSString).appendingPathComponent("wms")))),
            ("balancer", ProxyServer.ownRoutes.union(proxied)),
        ]
        for (tag, routes) in roles {
            let documented = spec[tag] ?? []
            #expect(routes.subtracting(documented).isEmpty, "\(tag) serves routes the spec does not document: \(routes.subtracting(documented).sorted())")
            #expect(documented.subtracting(routes).isEmpty, "the spec documents \(tag) routes it does not serve: \(documented.subtracting(routes).sorted())")
        }
        #expect(Set(spec.keys) == Set(roles.map(\.tag)), "tags of the spec: \(spec.keys.sorted())")
    }

    /// The balancer answers its own routes itself and proxies the rest.
    @Test func theBalancerAnswersExactlyItsOwnRoutes() async throws {
        let balancer = Balancer(config: .init(), clients: nil, logger: Self.logger)
        // Cancelled before its first round, it only shuts its HTTP client down.
        let running = Task { try await balancer.run() }
        running.cancel()
        defer { Task { _ = try? await running.value } }
        let server = ProxyServer(balancer: balancer, host: "127.0.0.1", port: 0, registry: PrometheusCollectorRegistry(), logger: Self.logger) { _ in }
        let connections = BackendConnections(loop: EmbeddedEventLoop(), logger: Self.logger)
        func answer(_ method: String, _ path: String) -> ProxyResponse? {
            let raw = Array("\(method) \(path) HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\n\r\n".utf8)
            guard case .complete(let head) = raw.withUnsafeBytes({ HTTPFraming.request($0, bodyBytesMax: 1 << 20) }) else {
                Issue.record("\(method) \(path) did not parse")
                return nil
            }
            return server.ownAnswer(ProxyRequest(head, verbatimHead: nil, body: nil), connections: connections)
        }
        for route in ProxyServer.ownRoutes {
            let parts = route.split(separator: " ")
            #expect(answer(String(parts[0]), String(parts[1]))?.status == 200, "\(route) is the balancer's own")
        }
        for route in ["GET /orders/o-1", "POST /orders", "GET /openapi.yaml", "GET /stats/summary", "DELETE /admin/partition"] {
            let parts = route.split(separator: " ")
            #expect(answer(String(parts[0]), String(parts[1])) == nil, "\(route) is proxied")
        }
        // Another method on one of its own paths: 405, with what it allows.
        let wrong = try #require(answer("TRACE", "/balancer"))
        #expect(wrong.status == 405 && String(buffer: wrong.bytes).contains("\r\nAllow: GET\r\n"), "\(String(buffer: wrong.bytes))")
    }

    @Test func everyRoleServesTheSpecAsTheFileHasIt() async throws {
        let file = try String(contentsOf: Self.specFile, encoding: .utf8)
        #expect(OpenAPI.yaml == file, "the embedded spec differs from docs/openapi.yaml: run tools/embed-openapi")
        let folder = Self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let (api, engine) = try Self.apiRouter((folder as NSString).appendingPathComponent("api"))
        defer { Task { await engine.shutdown() } }
        let routers = [
            ("api", api), ("stats", try Self.statsRouter((folder as NSString).appendingPathComponent("stats"))),
            ("warehouse", try Self.warehouseRouter((folder as NSString).appendingPathComponent("wms"))),
        ]
        for (role, router) in routers {
            try await Application(router: router).test(.router) { client in
                let response = try await client.execute(uri: "/openapi.yaml", method: .get)
                #expect(response.status == .ok, "\(role)")
                #expect(response.headers[.contentType] == "application/yaml", "\(role)")
                #expect(String(buffer: response.body) == file, "\(role)")
            }
        }
    }

    /// Schemathesis leaves out `GET /events` (a stream that never ends): its
    /// refusals are checked here against the documented codes.
    @Test func theEventFeedRefusesBadPositionsOrdersAndTypesAsDocumented() async throws {
        let folder = Self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let (api, engine) = try Self.apiRouter((folder as NSString).appendingPathComponent("api"))
        defer { Task { await engine.shutdown() } }
        try await Application(router: api).test(.router) { client in
            for (uri, headers, code) in [
                ("/events?after=%25%25", [:], "invalid_position"), ("/events", ["Last-Event-ID": "YXBpLTE6eA"], "invalid_position"),
                ("/events?order=no%20spaces", [:], "invalid_id"), ("/events?types=OrderPaid,Nope", [:], "invalid_types"),
            ] as [(String, [String: String], String)] {
                var fields = HTTPFields()
                for (name, value) in headers { fields[HTTPFields.Element.Name(name)!] = value }
                let response = try await client.execute(uri: uri, method: .get, headers: fields)
                #expect(response.status == .badRequest, "\(uri)")
                let error = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                #expect((error?["error"] as? [String: Any])?["code"] as? String == code, "\(uri): \(String(buffer: response.body))")
            }
        }
    }

    /// A node that has not joined its cluster cannot read its peers' logs:
    /// its feed clients are sent elsewhere with a 503, not left waiting.
    @Test func aNodeThatHasNotJoinedSendsFeedClientsElsewhere() async throws {
        let folder = Self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let log = try EventLog.open(data: folder, node: "api-1")
        let engine = OrderEngine(log: log, catalog: .standard, config: EngineConfig(nodeID: "api-1"), clock: SystemClock())
        defer { Task { await engine.shutdown() } }
        let membership = ClusterMembership(
            self: Member(id: "api-1", http: "127.0.0.1:8081", peer: "127.0.0.1:7081", incarnation: 1),
            config: MembershipConfig(), replicationFactor: 3, mustJoin: true, network: Self.clients("api-1"), environment: .system(),
            logger: Self.logger)
        let router = APIServer.router(
            service: engine, membership: membership, feeds: .standalone(log: log, nodeID: "api-1", logger: Self.logger),
            registry: PrometheusCollectorRegistry())
        try await Application(router: router).test(.router) { client in
            let response = try await client.execute(uri: "/events", method: .get)
            #expect(response.status == .serviceUnavailable)
            let error = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
            #expect((error?["error"] as? [String: Any])?["code"] as? String == "unavailable", "\(String(buffer: response.body))")
        }
    }
}
