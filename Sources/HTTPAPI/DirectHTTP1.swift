import BalancerCore
import Glibc
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import Node
import Synchronization

extension HTTPServerBuilder {
    /// HTTP/1.1 on plain NIO handlers, for the API node's hot path: requests
    /// are framed with `HTTPFraming` (the balancer's parser) straight from
    /// the connection's bytes, each connection's requests are answered in
    /// order by one task on the connection's event loop through `responder`
    /// (the router, its middleware and routes), and an answer with a known
    /// length leaves in one write. Hummingbird's own HTTP/1.1 channel puts an
    /// async channel, NIO's HTTP codec and the HTTPTypes conversion between
    /// the socket and the router; this does without them. `.tls(...)` wraps
    /// it as it wraps `.http1()`.
    ///
    /// What it does not take: a chunked request body (411, Content-Length
    /// needed), a body over `bodyBytesMax` (413), a head over 16 KiB (431),
    /// HTTP other than 1.0 and 1.1 (505). Graceful shutdown closes idle
    /// connections at once and busy ones after their answer in flight.
    public static func http1Direct<Responder: HTTPResponder>(
        responder: Responder, serverName: String? = nil, bodyBytesMax: Int = 4 << 20
    ) -> HTTPServerBuilder where Responder.Context == BasicRequestContext {
        .init { _ in DirectHTTP1Channel(responder: responder, serverName: serverName, bodyBytesMax: bodyBytesMax) }
    }
}

extension APIServer {
    /// The API node's HTTP/1.1 server: `router` on plain NIO handlers
    /// (`HTTPServerBuilder.http1Direct`).
    public static func http1(router: Router<BasicRequestContext>, serverName: String) -> HTTPServerBuilder {
        .http1Direct(responder: router.buildResponder(), serverName: serverName)
    }
}

struct DirectHTTP1Channel<Responder: HTTPResponder>: ServerChildChannel where Responder.Context == BasicRequestContext {
    struct Value: ServerChildChannelValue {
        let channel: any Channel
        let connection: DirectHTTP1Connection
    }

    let responder: Responder
    let serverName: String?
    let bodyBytesMax: Int

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let connection = DirectHTTP1Connection(bodyBytesMax: bodyBytesMax)
            try channel.pipeline.syncOperations.addHandler(connection)
            return Value(channel: channel, connection: connection)
        }
    }

    func handle(value: Value, logger: Logger) async {
        let channel = value.channel
        let connection = value.connection
        await withTaskExecutorPreference(EventLoopTaskExecutor(channel.eventLoop)) {
            for await item in connection.requests {
                let keepAlive: Bool
                switch item {
                case .request(let head, let body, let requestKeepAlive):
                    let request = Request(head: head, body: HummingbirdCore.RequestBody(buffer: body))
                    let context = BasicRequestContext(source: .init(channel: channel, logger: logger))
                    var response: Response
                    do {
                        response = try await responder.respond(to: request, context: context)
                    } catch {
                        logger.debug("request failed", metadata: ["error": "\(error)"])
                        response = Response(status: .internalServerError)
                    }
                    keepAlive = requestKeepAlive && response.headers[.connection]?.lowercased() != "close"
                    do {
                        try await DirectHTTP1Writer.write(
                            response, to: channel, headOnly: head.method == .head, keepAlive: keepAlive, serverName: serverName)
                    } catch {
                        logger.trace("could not write an answer", metadata: ["error": "\(error)"])
                        channel.close(promise: nil)
                        return
                    }
                case .invalid(let status, let message):
                    // Answered in turn after what came before it, then closed.
                    keepAlive = false
                    try? await DirectHTTP1Writer.write(
                        DirectHTTP1Writer.refusal(status: status, message: message), to: channel, headOnly: false, keepAlive: false,
                        serverName: serverName)
                }
                if await !connection.answered(keepAlive: keepAlive, on: channel) { break }
            }
        }
        channel.close(promise: nil)
    }
}

/// What the framing handler hands the connection's task.
enum DirectHTTP1Item: Sendable {
    case request(HTTPRequest, ByteBuffer, keepAlive: Bool)
    /// Not acceptable HTTP: answered with `status`, then the connection closes.
    case invalid(status: Int, message: String)
}

/// Frames requests from the connection's bytes and queues them for its
/// task; stops reading while enough wait (pipelined requests of a client
/// that does not read its answers). Its state is touched on the channel's
/// event loop only.
final class DirectHTTP1Connection: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let requests: AsyncStream<DirectHTTP1Item>
    private let continuation: AsyncStream<DirectHTTP1Item>.Continuation
    private let bodyBytesMax: Int
    private var buffer: ByteBuffer?
    /// Requests queued or being answered.
    private var unanswered = 0
    /// Graceful shutdown asked: close once nothing is owed.
    private var quiescing = false
    /// Reading stopped while too many requests wait; a read asked meanwhile.
    private var readHeld = false
    /// Parsing stopped: a bad request was queued (the connection closes
    /// after answering it) or the channel went away.
    private var stopped = false
    /// The head of a request whose body is still coming.
    private var expectingContinue = false
    static let queuedMax = 16

    init(bodyBytesMax: Int) {
        self.bodyBytesMax = bodyBytesMax
        (requests, continuation) = AsyncStream.makeStream(of: DirectHTTP1Item.self)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !stopped else { return }
        var incoming = unwrapInboundIn(data)
        if buffer == nil || buffer!.readableBytes == 0 {
            buffer = incoming
        } else {
            if buffer!.readerIndex > 64 * 1024 { buffer!.discardReadBytes() }
            buffer!.writeBuffer(&incoming)
        }
        frame(context: context)
    }

    private func frame(context: ChannelHandlerContext) {
        while !stopped, var bytes = buffer, bytes.readableBytes > 0 {
            let parsed = bytes.withUnsafeReadableBytes { HTTPFraming.request($0, bodyBytesMax: bodyBytesMax) }
            switch parsed {
            case .incomplete:
                return
            case .invalid(let status, let message):
                queue(.invalid(status: status, message: message))
                stopped = true
                buffer = nil
                return
            case .complete(let request):
                if request.bodyTooLarge {
                    queue(.invalid(status: 413, message: "the request body exceeds \(bodyBytesMax) bytes"))
                    stopped = true
                    buffer = nil
                    return
                }
                guard bytes.readableBytes >= request.headLength + request.bodyLength else {
                    if request.expectContinue && !expectingContinue {
                        expectingContinue = true
                        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n")), promise: nil)
                    }
                    return
                }
                expectingContinue = false
                guard let head = Self.head(request, bytes: bytes) else {
                    queue(.invalid(status: 400, message: "the request's method or a header line is not acceptable"))
                    stopped = true
                    buffer = nil
                    return
                }
                bytes.moveReaderIndex(forwardBy: request.headLength)
                let body = bytes.readSlice(length: request.bodyLength)!
                buffer = bytes
                queue(.request(head, body, keepAlive: request.keepAlive))
                if !request.keepAlive { stopped = true }
            }
        }
        if buffer?.readableBytes == 0 { buffer = nil }
    }

    private func queue(_ item: DirectHTTP1Item) {
        unanswered += 1
        continuation.yield(item)
    }

    /// The task answered one request: whether the connection stays open for
    /// the next one.
    func answered(keepAlive: Bool, on channel: any Channel) async -> Bool {
        if channel.eventLoop.inEventLoop {
            return answeredOnLoop(keepAlive: keepAlive, channel: channel)
        }
        // The state is the loop's.
        return (try? await channel.eventLoop.submit { self.answeredOnLoop(keepAlive: keepAlive, channel: channel) }.get()) ?? false
    }

    private func answeredOnLoop(keepAlive: Bool, channel: any Channel) -> Bool {
        unanswered -= 1
        guard keepAlive, !(quiescing && unanswered == 0) else {
            stopped = true
            continuation.finish()
            return false
        }
        if readHeld && unanswered < Self.queuedMax {
            readHeld = false
            channel.read()
        }
        return true
    }

    func read(context: ChannelHandlerContext) {
        if unanswered >= Self.queuedMax {
            readHeld = true
            return
        }
        context.read()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopped = true
        continuation.finish()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            quiescing = true
            if unanswered == 0 {
                stopped = true
                continuation.finish()
                context.close(promise: nil)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        stopped = true
        continuation.finish()
        context.close(promise: nil)
    }

    /// The request's head as HTTPTypes has it: the framing checked the
    /// request line and each header line's shape.
    static func head(_ request: HTTPFraming.Request, bytes: ByteBuffer) -> HTTPRequest? {
        var fields = HTTPFields()
        var authority: String?
        let ok = bytes.withUnsafeReadableBytes { raw -> Bool in
            let end = request.headLength - 4
            guard var start = raw.firstIndex(of: UInt8(ascii: "\n")).map({ $0 + 1 }) else { return false }
            while start < end {
                var lineEnd = start
                while lineEnd < end && raw[lineEnd] != UInt8(ascii: "\r") && raw[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
                if lineEnd > start {
                    guard let colon = raw[start..<lineEnd].firstIndex(of: UInt8(ascii: ":")),
                        let name = HTTPField.Name(String(decoding: raw[start..<colon], as: UTF8.self))
                    else { return false }
                    var valueStart = colon + 1
                    var valueEnd = lineEnd
                    while valueStart < valueEnd && (raw[valueStart] == 0x20 || raw[valueStart] == 0x09) { valueStart += 1 }
                    while valueEnd > valueStart && (raw[valueEnd - 1] == 0x20 || raw[valueEnd - 1] == 0x09) { valueEnd -= 1 }
                    let value = String(decoding: raw[valueStart..<valueEnd], as: UTF8.self)
                    // HTTPTypes keeps Host as the request's authority, not a field.
                    if name.canonicalName.lowercased() == "host" {
                        authority = value
                    } else {
                        fields.append(HTTPField(name: name, value: value))
                    }
                }
                start = lineEnd
                while start < end && (raw[start] == UInt8(ascii: "\r") || raw[start] == UInt8(ascii: "\n")) { start += 1 }
            }
            return true
        }
        guard ok, let method = HTTPRequest.Method(request.method) else { return nil }
        return HTTPRequest(method: method, scheme: nil, authority: authority, path: request.target, headerFields: fields)
    }
}

/// Writes a Hummingbird `Response` as HTTP/1.1: a body of known length
/// with its head in one write, any other chunked and flushed as it comes.
enum DirectHTTP1Writer {
    static func write(_ response: Response, to channel: any Channel, headOnly: Bool, keepAlive: Bool, serverName: String?) async throws {
        var response = response
        response.headers[.date] = HTTPDate.now()
        if let serverName { response.headers[.server] = serverName }
        if !keepAlive { response.headers[.connection] = "close" }
        let status = response.status
        let statusHasBody = status.code >= 200 && status != .noContent && status != .notModified
        let bodiless = headOnly || !statusHasBody
        if let length = response.body.contentLength {
            if statusHasBody { response.headers[.contentLength] = String(length) }
            let collected = Collected(channel.allocator.buffer(capacity: 256 + (bodiless ? 0 : length)))
            writeHead(response.head, into: &collected.out)
            if !bodiless { try await response.body.write(CollectingWriter(collected: collected)) }
            if keepAlive {
                // Not awaited: the next answer queues behind it anyway, and
                // a failed write closes the channel, which ends the task.
                channel.writeAndFlush(collected.out, promise: nil)
            } else {
                // The connection closes next: all of it must be out first.
                try await channel.writeAndFlush(collected.out)
            }
            return
        }
        response.headers[.contentLength] = nil
        if !bodiless { response.headers[.transferEncoding] = "chunked" }
        var head = channel.allocator.buffer(capacity: 256)
        writeHead(response.head, into: &head)
        if bodiless {
            try await channel.writeAndFlush(head)
            return
        }
        channel.write(head, promise: nil)
        try await response.body.write(ChunkedWriter(channel: channel))
    }

    /// The answer to a request that is not acceptable HTTP (`HTTPFraming`),
    /// in the API's error shape.
    static func refusal(status: Int, message: String) -> Response {
        switch status {
        case 411: APIError(.init(code: 411, reasonPhrase: "Length Required"), "length_required", "a request body needs Content-Length (chunked request bodies are not accepted)").response()
        case 413: APIError(.contentTooLarge, "body_too_large", message).response()
        case 431: APIError(.init(code: 431, reasonPhrase: "Request Header Fields Too Large"), "head_too_large", message).response()
        case 505: APIError(.init(code: 505, reasonPhrase: "HTTP Version Not Supported"), "http_version", message).response()
        default: APIError(.badRequest, "malformed_http", message).response()
        }
    }

    static func writeHead(_ head: HTTPResponse, into out: inout ByteBuffer) {
        out.writeString("HTTP/1.1 ")
        out.writeString(String(head.status.code))
        out.writeString(" ")
        out.writeString(head.status.reasonPhrase.isEmpty ? "Unknown" : head.status.reasonPhrase)
        out.writeString("\r\n")
        for field in head.headerFields {
            out.writeString(field.name.canonicalName)
            out.writeString(": ")
            out.writeString(field.value)
            out.writeString("\r\n")
        }
        out.writeString("\r\n")
    }

    /// The head, then the body as it is written: one write once finished.
    final class Collected {
        var out: ByteBuffer
        init(_ out: ByteBuffer) { self.out = out }
    }

    struct CollectingWriter: ResponseBodyWriter {
        let collected: Collected

        mutating func write(_ buffer: ByteBuffer) async throws {
            var buffer = buffer
            collected.out.writeBuffer(&buffer)
        }

        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }

    /// Chunked transfer coding, each chunk flushed, and the next written
    /// once the socket took it (a slow reader slows the writer).
    struct ChunkedWriter: ResponseBodyWriter {
        let channel: any Channel

        mutating func write(_ buffer: ByteBuffer) async throws {
            guard buffer.readableBytes > 0 else { return }
            var chunk = channel.allocator.buffer(capacity: buffer.readableBytes + 16)
            chunk.writeString(String(buffer.readableBytes, radix: 16))
            chunk.writeString("\r\n")
            var buffer = buffer
            chunk.writeBuffer(&buffer)
            chunk.writeString("\r\n")
            try await channel.writeAndFlush(chunk)
        }

        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
            try await channel.writeAndFlush(ByteBuffer(string: "0\r\n\r\n"))
        }
    }
}

/// The Date header's value (RFC 9110 IMF-fixdate), made at most once a
/// second.
enum HTTPDate {
    private struct Cached {
        var second: Int = -1
        var value = ""
    }
    private static let cache = Mutex(Cached())

    static func now() -> String {
        let second = time(nil)
        return cache.withLock { cached in
            if cached.second != second {
                var parts = tm()
                var t = second
                gmtime_r(&t, &parts)
                var bytes = [CChar](repeating: 0, count: 64)
                let count = strftime(&bytes, bytes.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
                cached.second = second
                cached.value = String(decoding: bytes[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
            return cached.value
        }
    }
}
