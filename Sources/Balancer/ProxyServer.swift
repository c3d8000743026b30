import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle

/// A request as the proxy holds it: the head and the whole body (bodies are
/// small commands; a retry must be able to send them again).
struct ProxyRequest: Sendable {
    var head: HTTPRequestHead
    var body: ByteBuffer?

    var path: Substring { head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "" }
}

/// An answer to send back: a backend's, or the balancer's own.
struct ProxyResponse: Sendable {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: ByteBuffer?

    /// The error shape of the API: {"error":{"code":...,"message":...}}.
    static func error(_ status: HTTPResponseStatus, _ code: String, _ message: String) -> ProxyResponse {
        json(status, ["error": ["code": code, "message": message]])
    }

    static func json(_ status: HTTPResponseStatus, _ value: some Encodable) -> ProxyResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data(#"{"error":{"code":"internal","message":"response encoding failed"}}"#.utf8)
        return ProxyResponse(status: status, headers: ["Content-Type": "application/json"], body: ByteBuffer(bytes: data))
    }
}

/// The balancer's HTTP front: a reverse proxy written on SwiftNIO's channels,
/// one event loop (like nginx's single worker), no task hop per request. A
/// client connection's request is read whole, sent on a kept-alive
/// connection to the chosen backend (both connections live on the same
/// loop), and the backend's answer is written back. `/balancer`,
/// `/metrics` and `/health/*` are answered here.
public final class ProxyServer: Service, Sendable {
    let balancer: Balancer
    let host: String
    let port: Int
    let registry: PrometheusCollectorRegistry
    let logger: Logger
    let onBound: @Sendable (SocketAddress) -> Void
    static let requestBodyBytesMax = 1 << 20

    public init(
        balancer: Balancer, host: String, port: Int, registry: PrometheusCollectorRegistry, logger: Logger,
        onBound: @escaping @Sendable (SocketAddress) -> Void
    ) {
        self.balancer = balancer
        self.host = host
        self.port = port
        self.registry = registry
        self.logger = logger
        self.onBound = onBound
    }

    public func run() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let connections = BackendConnections(loop: loop, logger: logger)
        let server: Channel
        do {
            server = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { [self] channel in
                    channel.eventLoop.makeCompletedFuture {
                        // No pipelining assistance: it stops and restarts reading
                        // around every request, an epoll_ctl call each time. The
                        // front handler keeps pipelined answers in order itself.
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(ProxyFrontHandler(server: self, connections: connections))
                    }
                }
                .bind(host: host, port: port).get()
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        if let address = server.localAddress { onBound(address) }
        try? await gracefulShutdown()
        try? await server.close()
        try? await loop.submit { connections.closeAll() }.get()
        try? await group.shutdownGracefully()
    }

    /// What the balancer answers itself, or nil to proxy.
    func ownAnswer(_ request: ProxyRequest) -> ProxyResponse? {
        guard request.head.method == .GET || request.head.method == .HEAD else { return nil }
        switch request.path {
        case "/balancer":
            return .json(.ok, BalancerView(strategy: balancer.config.strategy.rawValue, backends: balancer.status()))
        case "/health/live":
            return .json(.ok, ["status": "live"])
        case "/health/ready":
            return .json(.ok, ["status": "ready"])
        case "/metrics":
            var bytes: [UInt8] = []
            registry.emit(into: &bytes)
            return ProxyResponse(status: .ok, headers: ["Content-Type": "text/plain; version=0.0.4"], body: ByteBuffer(bytes: bytes))
        default:
            return nil
        }
    }
}

/// GET /balancer.
struct BalancerView: Encodable {
    let strategy: String
    let backends: [Balancer.BackendStatus]
}

/// One client connection: reads each request whole, gets its answer, and
/// writes the answers in the order the requests came (a client may send its
/// next request before the answer to the previous one).
final class ProxyFrontHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let server: ProxyServer
    let connections: BackendConnections
    private var head: HTTPRequestHead?
    private var body: ByteBuffer?
    private var tooLarge = false
    /// Completes once every answer so far is written.
    private var written: EventLoopFuture<Void>?
    /// Requests read and not yet answered.
    private var unanswered = 0
    /// Set once an answer said the connection closes: later requests on it
    /// are not answered.
    private var closing = false

    init(server: ProxyServer, connections: BackendConnections) {
        self.server = server
        self.connections = connections
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            head = requestHead
            body = nil
            tooLarge = false
        case .body(var chunk):
            guard !tooLarge else { return }
            if (body?.readableBytes ?? 0) + chunk.readableBytes > ProxyServer.requestBodyBytesMax {
                tooLarge = true
                body = nil
            } else if body == nil {
                body = chunk
            } else {
                body!.writeBuffer(&chunk)
            }
        case .end:
            guard let head, !closing else { return }
            self.head = nil
            let request = ProxyRequest(head: head, body: body)
            body = nil
            if !head.isKeepAlive { closing = true }
            let answer: EventLoopFuture<ProxyResponse>
            if tooLarge {
                answer = context.eventLoop.makeSucceededFuture(
                    .error(.payloadTooLarge, "body_too_large", "the request body exceeds \(ProxyServer.requestBodyBytesMax) bytes"))
            } else if let own = server.ownAnswer(request) {
                answer = context.eventLoop.makeSucceededFuture(own)
            } else {
                answer = server.balancer.forward(request, connections: connections)
            }
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            let inOrder = unanswered > 0 ? written.map { previous in previous.flatMap { answer } } ?? answer : answer
            unanswered += 1
            written = inOrder.map { response in
                let (handler, context) = bound.value
                handler.unanswered -= 1
                handler.write(response, for: head, context: context)
            }
        }
    }

    /// A request that is not HTTP: NIO's error handler has answered 400;
    /// nothing more is read or answered on this connection.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        closing = true
        context.close(promise: nil)
    }

    private func write(_ response: ProxyResponse, for request: HTTPRequestHead, context: ChannelHandlerContext) {
        var headers = response.headers
        headers.replaceOrAdd(name: "Content-Length", value: String(response.body?.readableBytes ?? 0))
        let keepAlive = request.isKeepAlive
        if request.version.major == 1 && request.version.minor == 0 && keepAlive {
            headers.replaceOrAdd(name: "Connection", value: "keep-alive")
        } else if !keepAlive {
            headers.replaceOrAdd(name: "Connection", value: "close")
        }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: response.status, headers: headers))), promise: nil)
        if let body = response.body, request.method != .HEAD, body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        let done = context.writeAndFlushPromise(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            done.futureResult.whenComplete { _ in bound.value.close(promise: nil) }
        }
    }
}

extension ChannelHandlerContext {
    fileprivate func writeAndFlushPromise(_ data: NIOAny) -> EventLoopPromise<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        writeAndFlush(data, promise: promise)
        return promise
    }
}

/// Why an exchange with a backend failed before it answered.
struct BackendFailure: Error, CustomStringConvertible {
    let description: String
    /// No answer began: on a kept-alive connection this is most often the
    /// backend having closed it while idle, worth one try on a new one.
    var noAnswer = false
}

/// Kept-alive connections to the backends, by address. Confined to the
/// proxy's event loop: every method runs on it.
final class BackendConnections: @unchecked Sendable {
    let loop: any EventLoop
    let logger: Logger
    private var idle: [String: [BackendConnection]] = [:]
    static let idleMaxPerBackend = 256
    static let responseBytesMax = 8 << 20
    static let answerTimeout = TimeAmount.seconds(10)

    init(loop: any EventLoop, logger: Logger) {
        self.loop = loop
        self.logger = logger
    }

    /// Sends the request to `address` and gets the whole answer. A kept-alive
    /// connection the backend closed in the meantime is replaced by a new one
    /// once, without counting against the backend.
    func exchange(_ request: ProxyRequest, address: String) -> EventLoopFuture<ProxyResponse> {
        loop.preconditionInEventLoop()
        if let reused = takeIdle(address) {
            return send(request, on: reused).flatMapError { error in
                guard let failure = error as? BackendFailure, failure.noAnswer else { return self.loop.makeFailedFuture(error) }
                return self.connect(address).flatMap { self.send(request, on: $0) }
            }
        }
        return connect(address).flatMap { self.send(request, on: $0) }
    }

    func closeAll() {
        for connection in idle.values.joined() { connection.channel.close(promise: nil) }
        idle = [:]
        sweep?.cancel()
    }

    /// Connections waiting for an answer, checked against their deadlines
    /// once a second (one timer for all, rather than one per request).
    private var busy: [ObjectIdentifier: BackendConnection] = [:]
    private var sweep: RepeatedTask?

    private func startSweeping() {
        guard sweep == nil else { return }
        sweep = loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [self] _ in
            let now = NIODeadline.now()
            for connection in busy.values where connection.deadline < now {
                connection.handler.failAnswer(BackendFailure(description: "\(connection.address) did not answer within \(Self.answerTimeout)"))
                connection.channel.close(promise: nil)
            }
        }
    }

    private func takeIdle(_ address: String) -> BackendConnection? {
        while let connection = idle[address]?.popLast() {
            if connection.channel.isActive { return connection }
        }
        return nil
    }

    private func release(_ connection: BackendConnection, address: String) {
        guard connection.channel.isActive, idle[address, default: []].count < Self.idleMaxPerBackend else {
            connection.channel.close(promise: nil)
            return
        }
        idle[address, default: []].append(connection)
    }

    private func connect(_ address: String) -> EventLoopFuture<BackendConnection> {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            return loop.makeFailedFuture(BackendFailure(description: "bad backend address \(address)"))
        }
        let host = String(address[..<colon])
        return ClientBootstrap(group: loop)
            .connectTimeout(.milliseconds(500))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(BackendHandler())
                }
            }
            .connect(host: host, port: port)
            .flatMapErrorThrowing { error in throw BackendFailure(description: "connect to \(address): \(error)") }
            .flatMapThrowing { channel in
                BackendConnection(channel: channel, handler: try channel.pipeline.syncOperations.handler(type: BackendHandler.self))
            }
            .map { connection in
                connection.address = address
                return connection
            }
    }

    private func send(_ request: ProxyRequest, on connection: BackendConnection) -> EventLoopFuture<ProxyResponse> {
        let promise = loop.makePromise(of: ProxyResponse.self)
        guard connection.channel.isActive else {
            connection.channel.close(promise: nil)
            promise.fail(BackendFailure(description: "connection to \(connection.address) closed", noAnswer: true))
            return promise.futureResult
        }
        connection.handler.expect(promise)
        var headers = HTTPHeaders()
        for (name, value) in request.head.headers where !Self.hopByHop(name) { headers.add(name: name, value: value) }
        if let body = request.body { headers.replaceOrAdd(name: "Content-Length", value: String(body.readableBytes)) }
        let head = HTTPRequestHead(version: .http1_1, method: request.head.method, uri: request.head.uri, headers: headers)
        let channel = connection.channel
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body = request.body { channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil) }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil)).whenFailure { error in
            promise.fail(BackendFailure(description: "send to \(connection.address): \(error)", noAnswer: true))
            channel.close(promise: nil)
        }
        connection.deadline = .now() + Self.answerTimeout
        busy[ObjectIdentifier(connection)] = connection
        startSweeping()
        return promise.futureResult.always { result in
            self.busy[ObjectIdentifier(connection)] = nil
            switch result {
            case .success where connection.handler.reusable: self.release(connection, address: connection.address)
            default: channel.close(promise: nil)
            }
        }
    }

    /// Headers of one connection, not of the request (RFC 9110 §7.6.1), and
    /// the framing, which the proxy sets again.
    static func hopByHop(_ name: String) -> Bool {
        // Compared without making a lowercased copy of every header name.
        var name = name
        return name.withUTF8 { bytes in
            for candidate in hopByHopNames where candidate.count == bytes.count {
                var equal = true
                for index in 0..<bytes.count where bytes[index] | 0x20 != candidate[index] {
                    equal = false
                    break
                }
                if equal { return true }
            }
            return false
        }
    }

    private static let hopByHopNames: [[UInt8]] = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "content-length",
    ].map { Array($0.utf8) }
}

final class BackendConnection: @unchecked Sendable {
    let channel: any Channel
    let handler: BackendHandler
    var address = ""
    var deadline = NIODeadline.distantFuture

    init(channel: any Channel, handler: BackendHandler) {
        self.channel = channel
        self.handler = handler
    }
}

/// Collects one answer at a time on a backend connection.
final class BackendHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart

    private var promise: EventLoopPromise<ProxyResponse>?
    private var head: HTTPResponseHead?
    private var body: ByteBuffer?
    /// The connection may carry another request after this answer.
    private(set) var reusable = false

    func expect(_ promise: EventLoopPromise<ProxyResponse>) {
        self.promise = promise
        head = nil
        body = nil
        reusable = false
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let responseHead):
            head = responseHead
        case .body(var chunk):
            if (body?.readableBytes ?? 0) + chunk.readableBytes > BackendConnections.responseBytesMax {
                fail(BackendFailure(description: "answer over \(BackendConnections.responseBytesMax) bytes"))
                context.close(promise: nil)
                return
            }
            if body == nil { body = chunk } else { body!.writeBuffer(&chunk) }
        case .end:
            guard let head, let promise else { return }
            var headers = HTTPHeaders()
            for (name, value) in head.headers where !BackendConnections.hopByHop(name) { headers.add(name: name, value: value) }
            reusable = head.isKeepAlive
            self.promise = nil
            self.head = nil
            promise.succeed(ProxyResponse(status: head.status, headers: headers, body: body))
            body = nil
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // Nothing of the answer came: the backend died or closed a kept-alive
        // connection; either way the request may be retried elsewhere.
        fail(BackendFailure(description: "the backend closed the connection before answering", noAnswer: head == nil))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(BackendFailure(description: "\(error)"))
        context.close(promise: nil)
    }

    func failAnswer(_ error: BackendFailure) { fail(error) }

    private func fail(_ error: BackendFailure) {
        reusable = false
        guard let promise else { return }
        self.promise = nil
        promise.fail(error)
    }
}
