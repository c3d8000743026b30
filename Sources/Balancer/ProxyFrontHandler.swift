import BalancerCore
import NIOCore

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
