import Logging
import NIOCore
import NIOSSL
import PeerTLS
import Wire

/// Fired down the pipeline once the peer has proven the cluster secret.
public struct PeerEstablished: Sendable {
    public let peerNodeID: String
    /// The peer protocol version the connection speaks.
    public let version: UInt8
}

/// Runs the handshake core on a connection. Until it succeeds no frame goes
/// further; any wire error (bad frame, wrong secret, wrong version), TLS
/// error (a certificate the cluster's CA did not sign, an expired one, a
/// clear-text client on a TLS port), a certificate that names another node
/// than the peer claims to be, or a handshake not finished within
/// `deadline` closes this connection alone, with the reason logged, and
/// never the node.
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
    /// TLS runs below: the peer's certificate must name the id it claims.
    private let checksCertificate: Bool
    private let deadline: TimeAmount
    private var timeout: Scheduled<Void>?

    /// How long a connection may take to finish both handshakes (TLS and
    /// the protocol's) before it is closed.
    static let defaultDeadline = PeerTransport.handshakeDeadline

    init(role: Role, version: WireVersion, peers: PeerVersions, checksCertificate: Bool = false, deadline: TimeAmount = defaultDeadline, logger: Logger) {
        self.role = role
        self.version = version
        self.peers = peers
        self.checksCertificate = checksCertificate
        self.deadline = deadline
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        logger[metadataKey: "peer_address"] = "\(context.remoteAddress.map { "\($0)" } ?? "?")"
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let deadline = self.deadline
        timeout = context.eventLoop.scheduleTask(in: deadline) {
            let (handler, context) = loopBound.value
            guard !handler.established else { return }
            handler.refuse(context: context, WireError.unexpectedMessage("the handshake did not finish within \(deadline.nanoseconds / 1_000_000) ms"))
        }
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
            if checksCertificate, let peer = outputs.lazy.compactMap(\.establishedPeer).first {
                try checkCertificate(context: context, claimed: peer)
            }
            for output in outputs {
                switch output {
                case .negotiated(let negotiated):
                    version.settle(on: negotiated)
                case .send(let reply):
                    context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
                case .established(let peer, let negotiated, let peerNewest):
                    established = true
                    timeout?.cancel()
                    peers.record(peer, PeerVersions.Peer(negotiated: negotiated, newest: peerNewest))
                    let tls = checksCertificate ? (try? context.pipeline.syncOperations.nioSSL_tlsVersion()).map { "\($0)" } ?? "?" : "off"
                    logger.info(
                        "peer connection established",
                        metadata: ["peer": "\(peer)", "protocol": "\(negotiated)", "peer_newest": "\(peerNewest)", "tls": "\(tls)"])
                    context.fireUserInboundEventTriggered(PeerEstablished(peerNodeID: peer, version: negotiated))
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

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        context.fireChannelInactive()
    }

    /// The peer's certificate (verified by TLS against the cluster's CA)
    /// must name the node id it claimed in the handshake.
    private func checkCertificate(context: ChannelHandlerContext, claimed: String) throws {
        let certificate = try? context.pipeline.syncOperations.nioSSL_peerCertificate()
        guard let certificate else { throw WireError.authenticationFailed("peer \(claimed) presented no TLS certificate") }
        let named = PeerTLS.peerID(of: certificate)
        guard named == claimed else {
            throw WireError.authenticationFailed("peer claims to be \(claimed) but its certificate names \(named ?? "no node")")
        }
    }

    private func refuse(context: ChannelHandlerContext, _ error: any Error) {
        timeout?.cancel()
        logger.warning("closing peer connection", metadata: ["reason": "\(Self.reason(error))"])
        if case .server = role, !established, let wireError = error as? WireError {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(ServerHandshake.rejection(wireError))).whenComplete { _ in
                channel.close(promise: nil)
            }
            // A write that cannot go out (TLS holds it until its own
            // handshake is done, which may be what never came) does not
            // keep the connection open.
            channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
        } else {
            context.close(promise: nil)
        }
    }
}

extension HandshakeHandler {
    /// What a log reader needs to know about why a connection was closed.
    static func reason(_ error: any Error) -> String {
        guard let tls = error as? NIOSSLError else { return "\(error)" }
        let text = "\(tls)"
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("HTTP_REQUEST") {
            return "TLS handshake failed: the peer does not speak TLS (a clear-text client on the TLS port?): \(text)"
        }
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return "TLS handshake failed: the peer's certificate was refused (not signed by this cluster's CA, expired or not yet valid): \(text)"
        }
        if text.contains("ALERT_UNKNOWN_CA") || text.contains("ALERT_BAD_CERTIFICATE") || text.contains("ALERT_CERTIFICATE")
            || text.contains("PEER_DID_NOT_RETURN_A_CERTIFICATE") || text.contains("ALERT_CERTIFICATE_REQUIRED")
        {
            return "TLS handshake failed: the peer refused this node's certificate, or sent none (another CA, or expired): \(text)"
        }
        if case .uncleanShutdown = tls { return "TLS: the peer closed the connection without closing TLS (it stopped, or the connection was cut)" }
        return "TLS: \(text)"
    }
}

extension HandshakeOutput {
    var establishedPeer: String? {
        if case .established(let peer, _, _) = self { return peer }
        return nil
    }
}
