import BalancerCore
import NIOCore

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
