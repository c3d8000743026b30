import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PeerTLS
import Wire

/// Listens for and opens peer connections: TLS (unless `--insecure`),
/// framing and the authenticated handshake in the pipeline, then
/// `application` for established frames.
public enum PeerTransport {
    /// How long a connection may take to finish both handshakes (TLS and
    /// the protocol's) before it is closed with the reason logged.
    public static let handshakeDeadline = TimeAmount.seconds(10)

    /// Starts listening; the returned channel's localAddress has the port.
    public static func listen(
        host: String, port: Int, security: HandshakeConfig, tls: PeerTLS? = nil, logger: Logger,
        handshakeDeadline: TimeAmount = PeerTransport.handshakeDeadline,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        application: @escaping @Sendable () -> any ChannelHandler
    ) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                pipeline(
                    channel, .server(ServerHandshake(config: security, nonce: HandshakeConfig.randomNonce())),
                    WireVersion.server(speaking: security.versions), security.peers, tls.map { .server($0.server) }, handshakeDeadline, logger,
                    application)
            }
            .bind(host: host, port: port).get()
    }

    /// Connects to a peer; the handshake runs once the connection is up.
    public static func connect(
        host: String, port: Int, security: HandshakeConfig, tls: PeerTLS? = nil, logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        application: @escaping @Sendable () -> any ChannelHandler
    ) async throws -> any Channel {
        try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(2))
            .channelInitializer { channel in
                pipeline(
                    channel, .client(ClientHandshake(config: security, nonce: HandshakeConfig.randomNonce())),
                    WireVersion.client(speaking: security.versions), security.peers, tls.map { .client($0.client) },
                    Self.handshakeDeadline, logger, application)
            }
            .connect(host: host, port: port).get()
    }

    enum TLSSide {
        case server(NIOSSLContext)
        case client(NIOSSLContext)
    }

    /// TLS, framing, then the handshake, then the application's handler.
    private static func pipeline(
        _ channel: any Channel, _ role: HandshakeHandler.Role, _ version: WireVersion, _ peers: PeerVersions, _ tls: TLSSide?,
        _ deadline: TimeAmount, _ logger: Logger, _ application: @Sendable () -> any ChannelHandler
    ) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            switch tls {
            case .server(let context):
                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
            case .client(let context):
                try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: nil))
            case nil:
                break
            }
            try channel.pipeline.syncOperations.addHandlers([
                ByteToMessageHandler(FrameDecoder(version: version)),
                MessageToByteHandler(FrameEncoder(version: version)),
                HandshakeHandler(role: role, version: version, peers: peers, checksCertificate: tls != nil, deadline: deadline, logger: logger),
                application(),
            ])
        }
    }
}
