import Logging
import Membership
import NIOCore
import OrderDomain
import Wire

/// Frame types of membership (application range).
enum ClusterFrame: UInt8 {
    case gossip = 18
}

/// What an authenticated peer sends us: forwarded calls, run on the local
/// engine and answered on the same connection, and gossip, handed to
/// membership. A frame it cannot decode closes the connection (with the
/// reason logged by the handshake handler).
final class ForwardServerHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    private let engine: OrderEngine
    private let gossip: (@Sendable (GossipDigest) -> Void)?
    private let logger: Logger

    init(engine: OrderEngine, gossip: (@Sendable (GossipDigest) -> Void)?, logger: Logger) {
        self.engine = engine
        self.gossip = gossip
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if frame.type == ClusterFrame.gossip.rawValue, let gossip {
            do {
                gossip(try GossipDigest.decode(Array(frame.payload.readableBytesView)))
            } catch {
                context.fireErrorCaught(WireError.malformed("gossip: \(error)"))
            }
            return
        }
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
