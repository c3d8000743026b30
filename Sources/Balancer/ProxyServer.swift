import BalancerCore
import Foundation
import HTTPAPI
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle

/// A request as the proxy holds it: its parsed head, the head to send on,
/// and its whole body (commands are small; a retry sends them again).
struct ProxyRequest: Sendable {
    let method: String
    let target: String
    let path: Substring
    /// The request line and end-to-end headers, for the backend.
    let forwardHead: ByteBuffer
    let body: ByteBuffer?
    /// An HTTP/1.0 request ends its backend connection (the backend closes
    /// it after the answer), so the connection is not kept.
    let keepsBackendConnection: Bool
    /// GET or HEAD, without a body: may share a pipelined connection.
    var isSafe: Bool { (method == "GET" || method == "HEAD") && body == nil }

    /// `verbatimHead`: the head's bytes as received, sent on as they are
    /// when nothing is taken out of them (`forwardHead` empty; no copy).
    init(_ head: HTTPFraming.Request, verbatimHead: ByteBuffer?, body: ByteBuffer?) {
        method = head.method
        target = head.target
        path = head.path
        forwardHead = verbatimHead ?? ByteBuffer(bytes: head.forwardHead)
        self.body = body
        keepsBackendConnection = head.minorVersion == 1
    }
}

/// An answer as bytes on the wire: a backend's as it came (head and body),
/// or one the balancer makes.
struct ProxyResponse: Sendable {
    var status: Int
    var bytes: ByteBuffer

    static func make(_ status: Int, contentType: String, body: ByteBuffer, close: Bool = false) -> ProxyResponse {
        let reason = HTTPResponseStatus(statusCode: status).reasonPhrase
        var bytes = ByteBuffer()
        bytes.writeString("HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.readableBytes)\r\n")
        if close { bytes.writeString("Connection: close\r\n") }
        bytes.writeString("\r\n")
        var body = body
        bytes.writeBuffer(&body)
        return ProxyResponse(status: status, bytes: bytes)
    }

    /// The error shape of the API: {"error":{"code":...,"message":...}}.
    static func error(_ status: Int, _ code: String, _ message: String, close: Bool = false) -> ProxyResponse {
        json(status, ["error": ["code": code, "message": message]], close: close)
    }

    static func json(_ status: Int, _ value: some Encodable, close: Bool = false) -> ProxyResponse {
        let data = (try? JSONResponse.encoder.encode(value)) ?? Data(#"{"error":{"code":"internal","message":"response encoding failed"}}"#.utf8)
        return make(status, contentType: "application/json", body: ByteBuffer(bytes: data), close: close)
    }
}

/// The balancer's HTTP front: a reverse proxy that moves bytes between
/// SwiftNIO channels on one event loop (like nginx's single worker). It
/// reads only what it must of HTTP (`HTTPFraming`: where a request or an
/// answer ends, the request line, the hop-by-hop headers), sends the request
/// on a kept-alive connection to the chosen backend, and writes the
/// backend's answer back as it came. `/balancer`, `/metrics` and
/// `/health/*` are answered here.
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
        let server: any Channel
        do {
            server = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { [self] channel in
                    channel.eventLoop.makeCompletedFuture {
                        // A client that sends nothing for a minute, with nothing
                        // of its own in flight, loses its connection.
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .seconds(60)))
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
    func ownAnswer(_ request: ProxyRequest, connections: BackendConnections) -> ProxyResponse? {
        guard request.method == "GET" else { return nil }
        switch request.path {
        case "/balancer":
            return .json(200, BalancerView(strategy: balancer.config.strategy.rawValue, pipelined: connections.pipelined, backends: balancer.status()))
        case "/health/live":
            return .json(200, ["status": "live"])
        case "/health/ready":
            return .json(200, ["status": "ready"])
        case "/metrics":
            var bytes: [UInt8] = []
            registry.emit(into: &bytes)
            return .make(200, contentType: "text/plain; version=0.0.4", body: ByteBuffer(bytes: bytes))
        default:
            return nil
        }
    }
}

/// GET /balancer.
struct BalancerView: Encodable {
    let strategy: String
    /// Requests that shared a backend connection with one in flight.
    let pipelined: Int
    let backends: [Balancer.BackendStatus]
}

/// One client connection: reads each request whole, gets its answer, and
/// writes the answers in the order the requests came (a client may send its
/// next request before the answer to the previous one).
final class ProxyFrontHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let server: ProxyServer
    let connections: BackendConnections
    /// Bytes received and not yet taken by a request.
    private var received: ByteBuffer?
    /// The head of the request whose body is still coming, and its bytes
    /// when they go to the backend as they came.
    private var current: HTTPFraming.Request?
    private var currentHeadBytes: ByteBuffer?
    private var continueSent = false
    /// Body bytes of a request over the limit still to read past.
    private var discarding = 0
    /// The answers owed, oldest first: filled as they come, written in
    /// order from the front.
    private var owed: [(answer: ProxyResponse?, keepAlive: Bool)] = []
    /// The sequence number of `owed[0]`.
    private var owedBase = 0
    /// Requests read and not yet answered.
    private var unanswered: Int { owed.count }
    /// At most this many pipelined requests of one connection are in
    /// flight; past it the connection is not read until answers go out, so
    /// one client cannot fan out without bound or fill memory.
    static let pipelinedMax = 16
    private var readingPaused = false
    /// Set once a request said it is the last (or was not HTTP): nothing
    /// more is read, and the connection closes after its answer.
    private var closing = false

    init(server: ProxyServer, connections: BackendConnections) {
        self.server = server
        self.connections = connections
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        guard !closing else { return }
        if discarding > 0 {
            let skipped = min(discarding, chunk.readableBytes)
            chunk.moveReaderIndex(forwardBy: skipped)
            discarding -= skipped
            if discarding == 0, let head = current { refuseTooLarge(head, context: context) }
        }
        if received == nil { received = chunk } else { received!.writeBuffer(&chunk) }
        takeRequests(context: context)
    }

    private func takeRequests(context: ChannelHandlerContext) {
        while !closing, discarding == 0, unanswered < Self.pipelinedMax, var buffer = received, buffer.readableBytes > 0 {
            if current == nil {
                let parsed = buffer.withUnsafeReadableBytes { HTTPFraming.request($0, bodyBytesMax: ProxyServer.requestBodyBytesMax) }
                switch parsed {
                case .incomplete:
                    return
                case .invalid(let status, let message):
                    closing = true
                    received = nil
                    respond(.error(status, status == 413 ? "body_too_large" : "bad_request", message, close: true), keepAlive: false, context: context)
                    return
                case .complete(let head):
                    current = head
                    currentHeadBytes = head.forwardHead.isEmpty ? buffer.readSlice(length: head.headLength) : nil
                    if currentHeadBytes == nil { buffer.moveReaderIndex(forwardBy: head.headLength) }
                    continueSent = false
                    received = buffer
                    if head.bodyTooLarge && head.expectContinue && buffer.readableBytes == 0 {
                        // Refused before the client sends the body it holds back.
                        closing = true
                        received = nil
                        current = nil
                        respond(
                            .error(413, "body_too_large", "the request body exceeds \(ProxyServer.requestBodyBytesMax) bytes", close: true),
                            keepAlive: false, context: context)
                        return
                    }
                    if head.bodyTooLarge {
                        let skipped = min(head.bodyLength, buffer.readableBytes)
                        buffer.moveReaderIndex(forwardBy: skipped)
                        received = buffer
                        discarding = head.bodyLength - skipped
                        if discarding == 0 { refuseTooLarge(head, context: context) }
                        continue
                    }
                }
            }
            guard let head = current else { return }
            guard buffer.readableBytes >= head.bodyLength else {
                if head.expectContinue && !continueSent {
                    continueSent = true
                    context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n")), promise: nil)
                }
                return
            }
            let body = head.bodyLength > 0 ? buffer.readSlice(length: head.bodyLength) : nil
            received = buffer.readableBytes > 0 ? buffer : nil
            current = nil
            if !head.keepAlive { closing = true }
            let request = ProxyRequest(head, verbatimHead: currentHeadBytes, body: body)
            currentHeadBytes = nil
            if let own = server.ownAnswer(request, connections: connections) {
                respond(own, keepAlive: head.keepAlive, context: context)
            } else {
                let sequence = owe(keepAlive: head.keepAlive)
                server.balancer.forward(request, connections: connections) { response in
                    self.fill(sequence, with: response, context: context)
                }
            }
        }
        if received?.readableBytes == 0 { received = nil }
        let paused = unanswered >= Self.pipelinedMax
        if paused != readingPaused {
            readingPaused = paused
            context.channel.setOption(.autoRead, value: !paused).whenFailure { _ in }
        }
    }

    private func refuseTooLarge(_ head: HTTPFraming.Request, context: ChannelHandlerContext) {
        current = nil
        currentHeadBytes = nil
        if !head.keepAlive { closing = true }
        respond(
            .error(413, "body_too_large", "the request body exceeds \(ProxyServer.requestBodyBytesMax) bytes", close: !head.keepAlive),
            keepAlive: head.keepAlive, context: context)
    }

    /// An answer ready now, written after every earlier one.
    private func respond(_ response: ProxyResponse, keepAlive: Bool, context: ChannelHandlerContext) {
        fill(owe(keepAlive: keepAlive), with: response, context: context)
    }

    /// Takes a place in the order of answers.
    private func owe(keepAlive: Bool) -> Int {
        owed.append((nil, keepAlive))
        return owedBase + owed.count - 1
    }

    /// Puts an answer in its place and writes every answer that is now at
    /// the front; closes the connection after an answer whose client does
    /// not keep it.
    private func fill(_ sequence: Int, with response: ProxyResponse, context: ChannelHandlerContext) {
        guard sequence >= owedBase, sequence - owedBase < owed.count else { return }
        owed[sequence - owedBase].answer = response
        var wroteAny = false
        while let first = owed.first, let answer = first.answer {
            owed.removeFirst()
            owedBase += 1
            wroteAny = true
            if first.keepAlive {
                context.write(wrapOutboundOut(answer.bytes), promise: nil)
            } else {
                let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
                context.writeAndFlush(wrapOutboundOut(answer.bytes)).whenComplete { _ in bound.value.close(promise: nil) }
                owed.removeAll()
                return
            }
        }
        guard wroteAny else { return }
        context.flush()
        // Written first: a request taken now is answered after them.
        if readingPaused { takeRequests(context: context) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        closing = true
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read, unanswered == 0 {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
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
///
/// Safe requests (GET and HEAD) that go to one backend in the same trip
/// round the event loop share a connection, pipelined (at most
/// `pipelineDepthMax` on one), and every connection written to in that
/// trip is flushed once at its end: the backend reads them in one read and
/// the kernel moves them in one segment instead of one each. Only requests
/// that arrived together wait for each other; a command (POST) always gets
/// a connection of its own. nginx and HAProxy open no pipelines to their
/// backends; this is where the proxy gains on them.
final class BackendConnections: @unchecked Sendable {
    let loop: any EventLoop
    let logger: Logger
    private var idle: [String: [BackendConnection]] = [:]
    static let idleMaxPerBackend = 256
    static let responseBytesMax = 8 << 20
    static let answerTimeout = TimeAmount.seconds(10)
    /// Safe requests pipelined on one connection at most.
    static let pipelineDepthMax = 4
    private let pipelinedCounter = Counter(label: "orderly_balancer_pipelined_requests_total")
    /// Requests sent on a connection that already carried one in flight.
    private(set) var pipelined = 0

    init(loop: any EventLoop, logger: Logger) {
        self.loop = loop
        self.logger = logger
    }

    /// Sends the request to `address` and gets the whole answer. A kept-alive
    /// connection the backend closed in the meantime is replaced by a new one
    /// once, without counting against the backend.
    func exchange(_ request: ProxyRequest, address: String, _ done: @escaping BackendHandler.Completion) {
        loop.preconditionInEventLoop()
        let joined = pipelineCandidate(for: request, address)
        if joined != nil {
            pipelined += 1
            pipelinedCounter.increment()
        }
        let reused = joined ?? takeIdle(address)
        guard let reused else { return connectAndSend(request, address: address, done) }
        send(request, on: reused) { result in
            if case .failure(let failure) = result, failure.noAnswer {
                self.connectAndSend(request, address: address, done)
            } else {
                done(result)
            }
        }
    }

    private func connectAndSend(_ request: ProxyRequest, address: String, _ done: @escaping BackendHandler.Completion) {
        let bound = NIOLoopBound(done, eventLoop: loop)
        connect(address).whenComplete { result in
            switch result {
            case .success(let connection): self.send(request, on: connection, bound.value)
            case .failure(let error): bound.value(.failure(error as? BackendFailure ?? BackendFailure(description: "\(error)")))
            }
        }
    }

    func closeAll() {
        for connection in idle.values.joined() { connection.channel.close(promise: nil) }
        idle = [:]
        sweep?.cancel()
    }

    /// Connections waiting for answers, checked against their deadlines
    /// once a second (one timer for all, rather than one per request).
    private var busy: [ObjectIdentifier: BackendConnection] = [:]
    private var sweep: RepeatedTask?
    /// Written to in this trip round the loop, to flush at its end; by
    /// backend, those that may take one more safe request.
    private var unflushed: [BackendConnection] = []
    private var pipelines: [String: BackendConnection] = [:]

    private func startSweeping() {
        guard sweep == nil else { return }
        sweep = loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [self] _ in
            let now = NIODeadline.now()
            for connection in busy.values where connection.deadline < now {
                connection.handler.failAnswers(BackendFailure(description: "\(connection.address) did not answer within \(Self.answerTimeout)"))
                connection.channel.close(promise: nil)
            }
        }
    }

    /// A connection that a safe request joins: one already written to in
    /// this trip, with only safe requests on it and room for one more.
    private func pipelineCandidate(for request: ProxyRequest, _ address: String) -> BackendConnection? {
        guard request.isSafe, let connection = pipelines[address] else { return nil }
        guard connection.channel.isActive, connection.handler.waiting < Self.pipelineDepthMax else {
            pipelines[address] = nil
            return nil
        }
        return connection
    }

    /// No more requests join `connection` in this trip.
    private func leavePipeline(_ connection: BackendConnection) {
        if pipelines[connection.address] === connection { pipelines[connection.address] = nil }
    }

    private func takeIdle(_ address: String) -> BackendConnection? {
        while let connection = idle[address]?.popLast() {
            if connection.channel.isActive { return connection }
        }
        return nil
    }

    private func release(_ connection: BackendConnection) {
        guard connection.channel.isActive, idle[connection.address, default: []].count < Self.idleMaxPerBackend else {
            connection.channel.close(promise: nil)
            return
        }
        idle[connection.address, default: []].append(connection)
    }

    private func connect(_ address: String) -> EventLoopFuture<BackendConnection> {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            return loop.makeFailedFuture(BackendFailure(description: "bad backend address \(address)"))
        }
        let host = String(address[..<colon])
        return ClientBootstrap(group: loop)
            .connectTimeout(.milliseconds(500))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(BackendHandler()) }
            }
            .connect(host: host, port: port)
            .flatMapErrorThrowing { error in throw BackendFailure(description: "connect to \(address): \(error)") }
            .flatMapThrowing { channel in
                BackendConnection(channel: channel, handler: try channel.pipeline.syncOperations.handler(type: BackendHandler.self), address: address)
            }
    }

    private func send(_ request: ProxyRequest, on connection: BackendConnection, _ done: @escaping BackendHandler.Completion) {
        let channel = connection.channel
        guard channel.isActive else {
            channel.close(promise: nil)
            return done(.failure(BackendFailure(description: "connection to \(connection.address) closed", noAnswer: true)))
        }
        let key = ObjectIdentifier(connection)
        connection.handler.expect(toHEAD: request.method == "HEAD", safe: request.isSafe) { result in
            switch result {
            case .success where !connection.handler.reusable || !request.keepsBackendConnection:
                self.busy[key] = nil
                self.leavePipeline(connection)
                channel.close(promise: nil)
            case .success:
                if connection.handler.waiting == 0 {
                    self.busy[key] = nil
                    // Idle again: only through the pool from here on.
                    self.leavePipeline(connection)
                    self.release(connection)
                } else {
                    // The next answer owed is due from now.
                    connection.deadline = .now() + Self.answerTimeout
                }
            case .failure:
                self.busy[key] = nil
                self.leavePipeline(connection)
                channel.close(promise: nil)
            }
            done(result)
        }
        var bytes = request.forwardHead
        if var body = request.body { bytes.writeBuffer(&body) }
        // A failed write closes the channel, and the handler fails the
        // answers then (channelInactive).
        channel.write(bytes, promise: nil)
        if request.isSafe && request.keepsBackendConnection && connection.handler.onlySafe {
            pipelines[connection.address] = connection
        }
        if unflushed.isEmpty {
            // After everything this trip round the loop reads.
            loop.execute { [self] in
                let written = unflushed
                unflushed.removeAll(keepingCapacity: true)
                pipelines.removeAll(keepingCapacity: true)
                for connection in written { connection.channel.flush() }
            }
        }
        if unflushed.last !== connection { unflushed.append(connection) }
        if busy[key] == nil {
            connection.deadline = .now() + Self.answerTimeout
            busy[key] = connection
        }
        startSweeping()
    }
}

final class BackendConnection: @unchecked Sendable {
    let channel: any Channel
    let handler: BackendHandler
    let address: String
    /// When the oldest answer waited for is due.
    var deadline = NIODeadline.distantFuture

    init(channel: any Channel, handler: BackendHandler, address: String) {
        self.channel = channel
        self.handler = handler
        self.address = address
    }
}

/// Collects the answers of one connection, in the order its requests went
/// out, as bytes: for each it reads the head for the status and the
/// framing, then takes the body by Content-Length, by chunks, or until the
/// backend closes.
final class BackendHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    typealias Completion = (Result<ProxyResponse, BackendFailure>) -> Void

    private struct Expected {
        let toHEAD: Bool
        let safe: Bool
        let completion: Completion
    }

    /// The answers owed, oldest first.
    private var expected = CircularBuffer<Expected>()
    private var received: ByteBuffer?
    private var head: HTTPFraming.Response?
    /// The connection may carry another request after the last answer.
    private(set) var reusable = false

    /// Answers still owed on this connection.
    var waiting: Int { expected.count }

    /// Every request waiting here is safe (GET or HEAD): another may join.
    var onlySafe: Bool { expected.allSatisfy(\.safe) }

    func expect(toHEAD: Bool, safe: Bool, _ completion: @escaping Completion) {
        if expected.isEmpty {
            received = nil
            head = nil
        }
        expected.append(Expected(toHEAD: toHEAD, safe: safe, completion: completion))
        reusable = false
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        guard !expected.isEmpty else {
            // Bytes nobody asked for: the connection cannot be trusted.
            context.close(promise: nil)
            return
        }
        if received == nil { received = chunk } else { received!.writeBuffer(&chunk) }
        guard received!.readableBytes <= BackendConnections.responseBytesMax else {
            return broken("answer over \(BackendConnections.responseBytesMax) bytes", context: context)
        }
        complete(context: context)
    }

    private func complete(context: ChannelHandlerContext) {
        while let buffer = received, buffer.readableBytes > 0, let next = expected.first {
            if head == nil {
                switch buffer.withUnsafeReadableBytes({ HTTPFraming.response($0, toHEAD: next.toHEAD) }) {
                case .incomplete:
                    return
                case .invalid(_, let message):
                    return broken(message, context: context)
                case .complete(let parsed):
                    if parsed.status < 200 {
                        // 1xx: not the answer; the answer follows.
                        var rest = buffer
                        rest.moveReaderIndex(forwardBy: parsed.headLength)
                        received = rest
                        continue
                    }
                    head = parsed
                }
            }
            guard let head else { return }
            let total: Int
            switch head.body {
            case .none:
                total = head.headLength
            case .length(let length):
                total = head.headLength + length
            case .chunked:
                let framing = buffer.withUnsafeReadableBytes { bytes in
                    HTTPFraming.chunkedBodyLength(UnsafeRawBufferPointer(rebasing: bytes[head.headLength...]))
                }
                switch framing {
                case .incomplete:
                    return
                case .invalid(_, let message):
                    return broken(message, context: context)
                case .complete(let length):
                    total = head.headLength + length
                }
            case .untilClose:
                return
            }
            guard buffer.readableBytes >= total else { return }
            var rest = buffer
            let answer = rest.readSlice(length: total)!
            received = rest.readableBytes > 0 ? rest : nil
            self.head = nil
            // More bytes than the answers owed: not a connection to reuse.
            reusable = head.keepAlive && (expected.count > 1 || received == nil)
            succeed(ProxyResponse(status: head.status, bytes: answer))
            if !head.keepAlive {
                failAnswers(BackendFailure(description: "the backend closed the connection after an answer", noAnswer: true))
                return
            }
        }
        if expected.isEmpty && received != nil {
            return broken("the backend sent more than its answers", context: context)
        }
    }

    /// The backend's bytes are not an answer: fail what is owed, and drop
    /// the connection.
    private func broken(_ message: String, context: ChannelHandlerContext) {
        failAnswers(BackendFailure(description: message))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let head, head.body == .untilClose, let received, !expected.isEmpty {
            reusable = false
            self.head = nil
            self.received = nil
            succeed(ProxyResponse(status: head.status, bytes: received))
        }
        // Nothing (or part) of an answer came: the backend died or closed a
        // kept-alive connection. The first answer may have begun; the rest
        // had not.
        let begun = head != nil || received != nil
        if let first = expected.popFirst() {
            reusable = false
            first.completion(.failure(BackendFailure(description: "the backend closed the connection before answering", noAnswer: !begun)))
        }
        failAnswers(BackendFailure(description: "the backend closed the connection before answering", noAnswer: true))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAnswers(BackendFailure(description: "\(error)"))
        context.close(promise: nil)
    }

    /// Fails every answer still owed.
    func failAnswers(_ error: BackendFailure) {
        reusable = false
        while let next = expected.popFirst() {
            next.completion(.failure(error))
        }
    }

    private func succeed(_ response: ProxyResponse) {
        guard let next = expected.popFirst() else { return }
        next.completion(.success(response))
    }
}
