import Logging
import NIOCore
import Wire

/// Fired down the pipeline once the peer has proven the cluster secret.
public struct PeerEstablished: Sendable {
    public let peerNodeID: String
}

/// Runs the handshake core on a connection. Until it succeeds no frame goes
/// further; any wire error (bad frame, wrong secret, wrong version) closes
/// this connection alone, with the reason logged, and never the node.
final class HandshakeHandler: ChannelDuplexHandler {
    typealias InboundIn = Frame
    typealias InboundOut = Frame
    typealias OutboundIn = Frame
    typealias OutboundOut = Frame

    enum Role {
        case client(ClientHandshake)
        case server(ServerHandshake)
    }

    private var role: Role
    private var established = false
    private var logger: Logger
    private let version: WireVersion
    private let peers: PeerVersions

    init(role: Role, version: WireVersion, peers: PeerVersions, logger: Logger) {
        self.role = role
        self.version = version
        self.peers = peers
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        logger[metadataKey: "peer_address"] = "\(context.remoteAddress.map { "\($0)" } ?? "?")"
        if case .client(let core) = role {
            context.writeAndFlush(wrapOutboundOut(core.hello()), promise: nil)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard !established else {
            context.fireChannelRead(data)
            return
        }
        do {
            let outputs: [HandshakeOutput]
            switch role {
            case .client(var core):
                outputs = try core.receive(frame)
                role = .client(core)
            case .server(var core):
                // A refusal goes back in a version the client reads.
                version.writing = min(frame.version, version.writing)
                outputs = try core.receive(frame)
                role = .server(core)
            }
            for output in outputs {
                switch output {
                case .negotiated(let negotiated):
                    version.settle(on: negotiated)
                case .send(let reply):
                    context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
                case .established(let peer, let negotiated, let peerNewest):
                    established = true
                    peers.record(peer, PeerVersions.Peer(negotiated: negotiated, newest: peerNewest))
                    logger.info(
                        "peer connection established", metadata: ["peer": "\(peer)", "protocol": "\(negotiated)", "peer_newest": "\(peerNewest)"])
                    context.fireUserInboundEventTriggered(PeerEstablished(peerNodeID: peer))
                }
            }
        } catch {
            refuse(context: context, error)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // Application frames wait for the handshake; the handshake's own
        // frames are written by this handler directly.
        guard established else {
            promise?.fail(WireError.unexpectedMessage("write before the handshake completed"))
            return
        }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        refuse(context: context, error)
    }

    private func refuse(context: ChannelHandlerContext, _ error: any Error) {
        logger.warning("closing peer connection", metadata: ["reason": "\(error)"])
        if case .server = role, !established, let wireError = error as? WireError {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(ServerHandshake.rejection(wireError))).whenComplete { _ in
                channel.close(promise: nil)
            }
        } else {
            context.close(promise: nil)
        }
    }
}
