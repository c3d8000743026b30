import AsyncHTTPClient
import NIOSSL
import BalancerCore
import Foundation
import Logging
import Membership
import Metrics
import NIOCore
import HTTPAPI
import Node
import ServiceLifecycle
import Synchronization

/// The balancer shell: owns the backend pool (a pure `BackendPool`), keeps
/// it fed with members (discovery through any API node's view, or a static
/// list), runs the active health checks, and proxies requests.
public final class Balancer: Service, Sendable {
    public struct Config: Sendable {
        public var strategy: Strategy = .roundRobin
        public var seeds: [String] = []
        /// Used while discovery has found nobody: host:port of API nodes.
        public var staticBackends: [String] = []
        /// Where `/stats/*` goes (host:port), if anywhere.
        public var stats: String?
        public var checkInterval: Duration = .milliseconds(500)
        public var health = HealthConfig()
        public var replicationFactor = 3
        /// Configured weights by backend id (weighted strategy; default 1).
        public var weights: [String: Int] = [:]
        public var weightsFromLatency = false
        /// A request is retried on other backends for at most this long.
        public var retryDeadline: Duration = .seconds(8)
        /// The retry budget, a token bucket: each request proxied adds this
        /// much, time adds `retryBudgetPerSecond`, and a round of retries
        /// (every backend tried once more) takes one; at most `retryBudgetMax`
        /// saved. Bounds the extra load retries put on a struggling cluster.
        public var retryBudgetRatio = 0.2
        public var retryBudgetPerSecond = 20.0
        public var retryBudgetMax = 200.0
        /// With it, the balancer reaches its backends (API nodes, stats) over
        /// HTTPS, checking their certificates against this configuration's
        /// trust roots (`--tls-ca`).
        public var backendTLS: TLSConfiguration?
        /// The scheme the backends serve.
        public var backendScheme: String { backendTLS == nil ? "http" : "https" }
        public init() {}
    }

    public let config: Config
    let pool: Mutex<BackendPool>
    private let clients: PeerClients?
    private let http: HTTPClient
    private let logger: Logger
    private let random = Mutex(SystemRandomNumberGenerator())
    private let retryTokens: Mutex<(tokens: Double, refilledMs: Int64)>
    private let requestsCounter = Counter(label: "orderly_balancer_requests_total")
    private let retriesCounter = Counter(label: "orderly_balancer_retries_total")
    private let errorsCounter = Counter(label: "orderly_balancer_errors_total")
    private let latency = Metrics.Timer(label: "orderly_balancer_request_seconds")

    public init(config: Config, clients: PeerClients?, logger: Logger) {
        self.config = config
        self.clients = clients
        self.logger = logger
        pool = Mutex(BackendPool(
            strategy: config.strategy, config: config.health, replicationFactor: config.replicationFactor, weightsFromLatency: config.weightsFromLatency))
        retryTokens = Mutex((config.retryBudgetMax, Self.nowMs()))
        var httpConfig = HTTPClient.Configuration()
        httpConfig.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 256)
        httpConfig.timeout = .init(connect: .milliseconds(500), read: .seconds(10))
        httpConfig.tlsConfiguration = config.backendTLS
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfig)
        if !config.staticBackends.isEmpty { refreshStatic() }
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    // MARK: Discovery and health

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            await discover()
            await checkHealth()
            try? await Task.sleep(for: config.checkInterval)
        }
        try? await http.shutdown()
    }

    private func refreshStatic() {
        let backends = config.staticBackends.map { Backend(id: $0, address: $0, weight: config.weights[$0] ?? 1) }
        pool.withLock { $0.update(backends) }
    }

    private func discover() async {
        guard let clients, !config.seeds.isEmpty else { return }
        let addresses = config.seeds + lastPeers.withLock { $0 }
        for address in Set(addresses).sorted() {
            guard let view = try? await clients.view(address, timeout: .seconds(1)), !view.isEmpty else { continue }
            // Dead and left members get no traffic; the ring holds every
            // member that has not left, as the API nodes' ring does.
            let live = view.filter { ($0.status == .alive || $0.status == .suspect) && !$0.http.isEmpty }
            let backends = live.map { Backend(id: $0.id, address: $0.http, weight: config.weights[$0.id] ?? 1) }
            let ring = view.filter { $0.status != .left }.map(\.id)
            lastPeers.withLock { $0 = view.filter { $0.status == .alive && !$0.peer.isEmpty }.map(\.peer) }
            if backends.isEmpty && !config.staticBackends.isEmpty { return }
            pool.withLock { $0.update(backends, ringNodes: ring) }
            return
        }
    }

    private let lastPeers = Mutex<[String]>([])

    private func checkHealth() async {
        let backends = pool.withLock { $0.entries.values.map(\.backend) }
        let scheme = config.backendScheme
        await withTaskGroup(of: (String, Bool).self) { group in
            for backend in backends {
                group.addTask { [http] in
                    let request = HTTPClientRequest(url: "\(scheme)://\(backend.address)/health/ready")
                    let passed = (try? await http.execute(request, timeout: .seconds(1)).status == .ok) ?? false
                    return (backend.id, passed)
                }
            }
            for await (id, passed) in group {
                let now = Self.nowMs()
                pool.withLock { $0.activeCheck(id, passed: passed, nowMs: now) }
            }
        }
    }

    // MARK: Proxying

    /// Whether a request for `path` goes to the stats node (`--stats`)
    /// rather than to an API node.
    public static func goesToStats(_ path: some StringProtocol) -> Bool {
        path.hasPrefix("/stats/") || path == "/stats"
    }

    /// The order a request is about, for the ring strategy: the path's, or
    /// a new order's `id`, read as the API node reads it (`RequestBody`); a
    /// body it would refuse routes like any request without an order.
    static func orderID(path: String, body: ByteBuffer?) -> String? {
        let parts = path.split(separator: "?", maxSplits: 1)[0].split(separator: "/")
        if parts.count >= 2 && parts[0] == "orders" { return String(parts[1]) }
        guard parts == ["orders"], let body, let id = try? RequestBody.parse(body).string("id") else { return nil }
        return id
    }

    /// Forwards a request to a backend; on a connection failure, a backend
    /// gone before answering, or a 503 (an order whose leader just died is
    /// unavailable until its next replica takes over), tries again on
    /// another backend with a growing pause, within the deadline and the
    /// retry budget. Commands carry client ids, so a retry never doubles one.
    /// Runs on the proxy's event loop; `done` gets the answer (always one:
    /// the backend's, or the balancer's error) on that loop.
    func forward(_ request: ProxyRequest, connections: BackendConnections, _ done: @escaping (ProxyResponse) -> Void) {
        let start = ContinuousClock.now
        requestsCounter.increment()
        retryTokens.withLock { $0.tokens = min($0.tokens + config.retryBudgetRatio, config.retryBudgetMax) }
        let finish: (ProxyResponse) -> Void = { response in
            self.latency.recordNanoseconds((ContinuousClock.now - start).nanoseconds)
            done(response)
        }
        if Self.goesToStats(request.path) {
            guard let stats = config.stats else { return finish(.error(503, "unavailable", "no stats node is configured (--stats)")) }
            connections.exchange(request, address: stats) { result in
                switch result {
                case .success(let response): finish(response)
                case .failure: finish(.error(502, "bad_gateway", "the stats node did not answer"))
                }
            }
            return
        }
        if request.path == "/events" {
            return finish(eventFeedRedirect(request))
        }
        // Only the ring strategy routes by order.
        let order = config.strategy == .ring ? Self.orderID(path: String(request.path), body: request.body) : nil
        attempt(request, Attempts(order: order, start: start), connections, finish)
    }

    /// The event feed streams without end, and the proxy passes whole
    /// answers: a client of the feed is sent to a ready API node (307, the
    /// same request there; `Last-Event-ID` goes with it).
    private func eventFeedRedirect(_ request: ProxyRequest) -> ProxyResponse {
        guard request.method == "GET" || request.method == "HEAD" else {
            return .error(405, "method_not_allowed", "\(request.method) is not allowed on /events; allowed: GET", headers: ["Allow": "GET"])
        }
        let now = Self.nowMs()
        let address = pool.withLock { pool -> String? in
            var random = self.random.withLock { $0 }
            return pool.pick(orderID: nil, nowMs: now, random: &random).flatMap { pool.entries[$0]?.backend.address }
        }
        guard let address else { return .error(503, "unavailable", "no API node is ready to serve the event feed") }
        let location = "\(config.backendScheme)://\(address)\(request.target)"
        return .json(
            307, ["location": location, "message": "the event feed is served by the API nodes: follow the redirect"],
            headers: ["Location": location])
    }

    /// The state of one request's tries; confined to the proxy's loop.
    final class Attempts {
        let order: String?
        let start: ContinuousClock.Instant
        var tried: Set<String> = []
        var pause = Duration.milliseconds(25)
        var lastError = "no backend is known yet"
        var count = 0

        init(order: String?, start: ContinuousClock.Instant) {
            self.order = order
            self.start = start
        }
    }

    private func attempt(
        _ request: ProxyRequest, _ attempts: Attempts, _ connections: BackendConnections, _ done: @escaping (ProxyResponse) -> Void
    ) {
        attempts.count += 1
        let now = Self.nowMs()
        let chosen = pool.withLock { pool -> (String, String)? in
            var random = self.random.withLock { $0 }
            guard let id = pool.pick(orderID: attempts.order, nowMs: now, excluding: attempts.tried, random: &random)
                ?? pool.pick(orderID: attempts.order, nowMs: now, random: &random),
                let address = pool.entries[id]?.backend.address
            else { return nil }
            pool.requestStarted(id)
            return (id, address)
        }
        guard let (id, address) = chosen else { return retry(request, attempts, connections, done) }
        let sent = ContinuousClock.now
        connections.exchange(request, address: address) { outcome in
            switch outcome {
            case .success(let response):
                self.ended(id, failed: response.status >= 500, since: sent)
                guard response.status == 503 else { return done(response) }
                attempts.lastError = "\(id) answered 503"
            case .failure(let error):
                self.ended(id, failed: true, since: sent)
                attempts.lastError = "\(id): \(error)"
            }
            attempts.tried.insert(id)
            self.retry(request, attempts, connections, done)
        }
    }

    private func ended(_ id: String, failed: Bool, since sent: ContinuousClock.Instant) {
        let elapsedMs = Double((ContinuousClock.now - sent).nanoseconds) / 1e6
        pool.withLock { $0.requestEnded(id, failed: failed, latencyMs: elapsedMs, nowMs: Self.nowMs()) }
    }

    private func retry(
        _ request: ProxyRequest, _ attempts: Attempts, _ connections: BackendConnections, _ done: @escaping (ProxyResponse) -> Void
    ) {
        guard ContinuousClock.now - attempts.start + attempts.pause < config.retryDeadline else { return giveUp(attempts, done) }
        retriesCounter.increment()
        guard attempts.tried.count >= pool.withLock({ $0.entries.count }) else { return attempt(request, attempts, connections, done) }
        // Every backend tried: a new round, if the budget allows, after a pause.
        guard takeRetryToken() else { return giveUp(attempts, done) }
        let pause = attempts.pause
        attempts.pause = min(attempts.pause * 2, .milliseconds(500))
        attempts.tried = []
        let loop = connections.loop
        let bound = NIOLoopBound((attempts, done), eventLoop: loop)
        loop.scheduleTask(in: .nanoseconds(pause.nanoseconds)) {
            let (attempts, done) = bound.value
            self.attempt(request, attempts, connections, done)
        }
    }

    private func giveUp(_ attempts: Attempts, _ done: (ProxyResponse) -> Void) {
        errorsCounter.increment()
        done(.error(503, "unavailable", "no backend answered after \(attempts.count) attempt(s): \(attempts.lastError)"))
    }

    func takeRetryToken() -> Bool {
        let now = Self.nowMs()
        return retryTokens.withLock { bucket in
            bucket.tokens = min(config.retryBudgetMax, bucket.tokens + Double(now - bucket.refilledMs) / 1000 * config.retryBudgetPerSecond)
            bucket.refilledMs = now
            guard bucket.tokens >= 1 else { return false }
            bucket.tokens -= 1
            return true
        }
    }

    // MARK: Visibility

    public struct BackendStatus: Encodable, Sendable {
        let id: String
        let address: String
        let state: String
        let weight: Int
        let in_flight: Int
        let requests: Int
        let failures: Int
        let ejections: Int
        let latency_ms: Double
    }

    public func status() -> [BackendStatus] {
        let now = Self.nowMs()
        return pool.withLock { pool in
            pool.entries.values.sorted { $0.backend.id < $1.backend.id }.map { entry in
                let state = entry.health.state == .ejected && entry.health.usable(nowMs: now) ? "trial" : entry.health.state.rawValue
                return BackendStatus(
                    id: entry.backend.id, address: entry.backend.address, state: state, weight: entry.backend.weight, in_flight: entry.inFlight,
                    requests: entry.requests, failures: entry.failures, ejections: entry.health.ejections,
                    latency_ms: (entry.latencyMs * 10).rounded() / 10)
            }
        }
    }
}
