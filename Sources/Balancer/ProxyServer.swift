import BalancerCore
import Foundation
import HTTPAPI
import Logging
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
    func ownAnswer(_ request: ProxyRequest) -> ProxyResponse? {
        guard request.method == "GET" else { return nil }
        switch request.path {
        case "/balancer":
            return .json(200, BalancerView(strategy: balancer.config.strategy.rawValue, backends: balancer.status()))
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
            if let own = server.ownAnswer(request) {
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
    func exchange(_ request: ProxyRequest, address: String, _ done: @escaping BackendHandler.Completion) {
        loop.preconditionInEventLoop()
        guard let reused = takeIdle(address) else { return connectAndSend(request, address: address, done) }
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
        connection.handler.expect(toHEAD: request.method == "HEAD") { result in
            self.busy[key] = nil
            switch result {
            case .success where connection.handler.reusable && request.keepsBackendConnection: self.release(connection)
            default: channel.close(promise: nil)
            }
            done(result)
        }
        var bytes = request.forwardHead
        if var body = request.body { bytes.writeBuffer(&body) }
        // A failed write closes the channel, and the handler fails the
        // answer then (channelInactive).
        channel.writeAndFlush(bytes, promise: nil)
        connection.deadline = .now() + Self.answerTimeout
        busy[key] = connection
        startSweeping()
    }
}

final class BackendConnection: @unchecked Sendable {
    let channel: any Channel
    let handler: BackendHandler
    let address: String
    var deadline = NIODeadline.distantFuture

    init(channel: any Channel, handler: BackendHandler, address: String) {
        self.channel = channel
        self.handler = handler
        self.address = address
    }
}

/// Collects one answer at a time on a backend connection, as bytes: it
/// reads the head for the status and the framing, then takes the body by
/// Content-Length, by chunks, or until the backend closes.
final class BackendHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    typealias Completion = (Result<ProxyResponse, BackendFailure>) -> Void

    private var completion: Completion?
    private var toHEAD = false
    private var received: ByteBuffer?
    private var head: HTTPFraming.Response?
    /// The connection may carry another request after this answer.
    private(set) var reusable = false

    func expect(toHEAD: Bool, _ completion: @escaping Completion) {
        self.completion = completion
        self.toHEAD = toHEAD
        received = nil
        head = nil
        reusable = false
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        guard completion != nil else {
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
        while let buffer = received, completion != nil {
            if head == nil {
                switch buffer.withUnsafeReadableBytes({ HTTPFraming.response($0, toHEAD: toHEAD) }) {
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
            // More bytes than one answer: not a connection to reuse.
            reusable = head.keepAlive && rest.readableBytes == 0
            succeed(ProxyResponse(status: head.status, bytes: answer))
            return
        }
    }

    /// The backend's bytes are not an answer: fail it, and drop the
    /// connection.
    private func broken(_ message: String, context: ChannelHandlerContext) {
        failAnswer(BackendFailure(description: message))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let head, head.body == .untilClose, let received {
            reusable = false
            succeed(ProxyResponse(status: head.status, bytes: received))
        } else {
            // Nothing (or part) of the answer came: the backend died or
            // closed a kept-alive connection.
            failAnswer(BackendFailure(description: "the backend closed the connection before answering", noAnswer: head == nil && received == nil))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAnswer(BackendFailure(description: "\(error)"))
        context.close(promise: nil)
    }

    func failAnswer(_ error: BackendFailure) {
        reusable = false
        guard let completion else { return }
        self.completion = nil
        completion(.failure(error))
    }

    private func succeed(_ response: ProxyResponse) {
        guard let completion else { return }
        self.completion = nil
        head = nil
        received = nil
        completion(.success(response))
    }
}
