import Logging
import NIOCore
import OrderDomain
import Wire

/// The leader's side of forwarding: runs forwarded calls on the local engine
/// and answers on the same connection. A frame it cannot decode closes the
/// connection (with the reason logged by the handshake handler).
final class ForwardServerHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    private let engine: OrderEngine
    private let logger: Logger

    init(engine: OrderEngine, logger: Logger) {
        self.engine = engine
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard frame.type == ForwardFrame.request.rawValue else {
            logger.debug("dropping peer frame with no handler", metadata: ["type": "\(frame.type)"])
            return
        }
        let request: ForwardRequest
        do {
            request = try ForwardCodec.decodeRequest(frame)
        } catch {
            context.fireErrorCaught(error)
            return
        }
        let channel = context.channel
        let engine = self.engine
        Task {
            let reply = await Self.run(request, on: engine)
            try? await channel.writeAndFlush(ForwardCodec.encode(reply, correlationID: request.correlationID))
        }
    }

    static func run(_ request: ForwardRequest, on engine: OrderEngine) async -> ForwardReply {
        do {
            switch request.call {
            case .read:
                return .done(outcome: nil, state: try await engine.state(of: request.orderID))
            case .command(let command):
                switch try await engine.execute(request.orderID, command) {
                case .success(let result): return .done(outcome: result.outcome, state: result.state)
                case .failure(let error): return .refused(error)
                }
            }
        } catch {
            return .unavailable("\(error)")
        }
    }
}
