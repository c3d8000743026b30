import Logging
import NIOCore
import NIOPosix
import Wire

/// Listens for and opens peer connections: framing and the authenticated
/// handshake in the pipeline, then `application` for established frames.
public enum PeerTransport {
    /// Starts listening; the returned channel's localAddress has the port.
    public static func listen(
        host: String, port: Int, security: HandshakeConfig, logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        application: @escaping @Sendable () -> any ChannelHandler
    ) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                pipeline(
                    channel, .server(ServerHandshake(config: security, nonce: HandshakeConfig.randomNonce())),
                    WireVersion.server(speaking: security.versions), security.peers, logger, application)
            }
            .bind(host: host, port: port).get()
    }

    /// Connects to a peer; the handshake runs once the connection is up.
    public static func connect(
        host: String, port: Int, security: HandshakeConfig, logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        application: @escaping @Sendable () -> any ChannelHandler
    ) async throws -> any Channel {
        try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(2))
            .channelInitializer { channel in
                pipeline(
                    channel, .client(ClientHandshake(config: security, nonce: HandshakeConfig.randomNonce())),
                    WireVersion.client(speaking: security.versions), security.peers, logger, application)
            }
            .connect(host: host, port: port).get()
    }

    /// Framing, then the handshake, then the application's handler.
    private static func pipeline(
        _ channel: any Channel, _ role: HandshakeHandler.Role, _ version: WireVersion, _ peers: PeerVersions, _ logger: Logger,
        _ application: @Sendable () -> any ChannelHandler
    ) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandlers([
                ByteToMessageHandler(FrameDecoder(version: version)),
                MessageToByteHandler(FrameEncoder(version: version)),
                HandshakeHandler(role: role, version: version, peers: peers, logger: logger),
                application(),
            ])
        }
    }
}
