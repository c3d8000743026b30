import Logging
import Membership
import NIOConcurrencyHelpers
import NIOCore
import OrderDomain
import Wire

/// Frame types of membership (application range).
enum ClusterFrame: UInt8 {
    case gossip = 18
    /// A role outside the ring (stats, warehouse, balancer) asks for this
    /// node's view: payload = correlation id.
    case viewRequest = 21
    /// The view: correlation id, then a gossip digest.
    case viewReply = 22
}

/// What a node serves to its authenticated peers.
public struct PeerHandlers: Sendable {
    let engine: OrderEngine
    let gossip: (@Sendable (GossipDigest, _ sender: String?) -> Void)?
    let replicator: Replicator?
    let filter: PeerFilter?
    /// Where this node would send the order's commands itself. A forwarded
    /// call is served only when that is here: a sender with a stale view
    /// must not make two nodes lead one order.
    let route: (@Sendable (ClientID) -> Route)?
    /// This node's view of the members, for roles outside the ring.
    let view: (@Sendable () -> [Member])?

    public init(
        engine: OrderEngine, gossip: (@Sendable (GossipDigest, _ sender: String?) -> Void)? = nil, replicator: Replicator? = nil,
        filter: PeerFilter? = nil, route: (@Sendable (ClientID) -> Route)? = nil, view: (@Sendable () -> [Member])? = nil
    ) {
        self.route = route
        self.view = view
        self.engine = engine
        self.gossip = gossip
        self.replicator = replicator
        self.filter = filter
    }
}

/// What an authenticated peer sends us: forwarded calls, run on the local
/// engine and answered on the same connection; fetches of log events; and
/// gossip, handed to membership. A frame it cannot decode closes the
/// connection (with the reason logged by the handshake handler). While the
/// partition switch cuts the peer off, its frames are dropped unanswered.
final class ForwardServerHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    private let handlers: PeerHandlers
    private let logger: Logger
    private let peerID = NIOLockedValueBox<String?>(nil)

    init(handlers: PeerHandlers, logger: Logger) {
        self.handlers = handlers
        self.logger = logger
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let established = event as? PeerEstablished {
            peerID.withLockedValue { $0 = established.peerNodeID }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if let filter = handlers.filter, let peer = peerID.withLockedValue({ $0 }), filter.blocks(id: peer) {
            return
        }
        switch frame.type {
        case ClusterFrame.gossip.rawValue:
            guard let gossip = handlers.gossip else { return }
            do {
                gossip(try GossipDigest.decode(Array(frame.payload.readableBytesView)), peerID.withLockedValue { $0 })
            } catch {
                context.fireErrorCaught(WireError.malformed("gossip: \(error)"))
            }
        case ClusterFrame.viewRequest.rawValue:
            guard let view = handlers.view else { return }
            guard frame.payload.readableBytes == 8, let correlationID = frame.payload.getInteger(at: frame.payload.readerIndex, as: UInt64.self) else {
                context.fireErrorCaught(WireError.malformed("view request: expected an 8-byte correlation id"))
                return
            }
            var payload = ByteBuffer()
            payload.writeInteger(correlationID)
            payload.writeBytes(GossipDigest(members: view()).encoded())
            context.writeAndFlush(wrapOutboundOut(Frame(type: ClusterFrame.viewReply.rawValue, payload: payload)), promise: nil)
        case ForwardFrame.request.rawValue:
            let request: ForwardRequest
            do {
                request = try ForwardCodec.decodeRequest(frame)
            } catch {
                context.fireErrorCaught(error)
                return
            }
            let channel = context.channel
            let engine = handlers.engine
            let route = handlers.route?(request.orderID) ?? .local
            Task {
                let reply: ForwardReply
                switch route {
                case .local: reply = await Self.run(request, on: engine)
                case .remote(let leader, _): reply = .unavailable("this node does not lead order \(request.orderID) (\(leader) does in its view); retry")
                case .unavailable(let reason): reply = .unavailable(reason)
                }
                try? await channel.writeAndFlush(ForwardCodec.encode(reply, correlationID: request.correlationID))
            }
        case ReplicationFrame.fetch.rawValue:
            guard let replicator = handlers.replicator else { return }
            let request: FetchRequest
            do {
                request = try ReplicationCodec.decodeRequest(frame)
            } catch {
                context.fireErrorCaught(error)
                return
            }
            let channel = context.channel
            Task {
                let reply = await replicator.serve(request)
                try? await channel.writeAndFlush(ReplicationCodec.encode(reply, correlationID: request.correlationID))
            }
        case ReplicationFrame.vouch.rawValue:
            guard let replicator = handlers.replicator else { return }
            do {
                let (follower, view) = try ReplicationCodec.decodeVouch(frame)
                // Only a peer speaks for itself.
                let sender = peerID.withLockedValue { $0 } ?? follower
                guard sender == follower else {
                    context.fireErrorCaught(WireError.malformed("\(sender) sent a view as \(follower)"))
                    return
                }
                replicator.noteView(follower, view)
            } catch {
                context.fireErrorCaught(error)
            }
        default:
            logger.debug("dropping peer frame with no handler", metadata: ["type": "\(frame.type)"])
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
