import Logging
import NIOConcurrencyHelpers
import NIOCore
import Wire

/// The listening side of the NIO transport: decodes what an authenticated
/// peer sends and hands it to the node's `PeerInbox`; answers requests on
/// the same connection. A frame it cannot decode closes the connection
/// (with the reason logged by the handshake handler). While the partition
/// switch cuts the peer off, its frames are dropped unanswered.
final class PeerServerHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = Frame
    typealias OutboundOut = Frame

    private let inbox: any PeerInbox
    private let filter: PeerFilter?
    private let logger: Logger
    private let peerID = NIOLockedValueBox<String?>(nil)

    init(inbox: any PeerInbox, filter: PeerFilter?, logger: Logger) {
        self.inbox = inbox
        self.filter = filter
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
        let peer = peerID.withLockedValue { $0 } ?? ""
        if let filter, filter.blocks(id: peer) { return }
        let inbound: PeerInbound?
        do {
            inbound = try PeerCodec.decode(frame)
        } catch {
            context.fireErrorCaught(error)
            return
        }
        switch inbound {
        case .message(let message)?:
            inbox.receive(message, from: peer)
        case .request(let correlationID, let request)?:
            let channel = context.channel
            let inbox = self.inbox
            Task {
                let reply = await inbox.answer(request, from: peer)
                try? await channel.writeAndFlush(PeerCodec.encode(reply, correlationID: correlationID))
            }
        case .reply?, nil:
            logger.debug("dropping peer frame with no handler", metadata: ["type": "\(frame.type)"])
        }
    }
}
