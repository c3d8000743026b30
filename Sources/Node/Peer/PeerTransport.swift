import Logging
import NIOCore
import NIOPosix
import Wire

/// Secret and identity for peer connections.
public struct PeerSecurity: Sendable {
    public var cluster: String
    public var nodeID: String
    public var secret: [UInt8]?

    public init(cluster: String, nodeID: String, secret: [UInt8]?) {
        self.cluster = cluster
        self.nodeID = nodeID
        self.secret = secret
    }

    var handshake: HandshakeConfig { HandshakeConfig(cluster: cluster, nodeID: nodeID, secret: secret) }

    static func nonce() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<WireLimits.nonceBytes).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }
}

/// Listens for and opens peer connections: framing and the authenticated
/// handshake in the pipeline, then `application` for established frames.
public enum PeerTransport {
    /// Starts listening; the returned channel's localAddress has the port.
    public static func listen(
        host: String, port: Int, security: PeerSecurity, logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        application: @escaping @Sendable () -> any ChannelHandler
    ) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(FrameDecoder()),
                        MessageToByteHandler(FrameEncoder()),
                        HandshakeHandler(role: .server(ServerHandshake(config: security.handshake, nonce: PeerSecurity.nonce())), logger: logger),
                        application(),
                    ])
                }
            }
            .bind(host: host, port: port).get()
    }

    /// Connects to a peer; the handshake runs once the connection is up.
    public static func connect(
        host: String, port: Int, security: PeerSecurity, logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        application: @escaping @Sendable () -> any ChannelHandler
    ) async throws -> any Channel {
        try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(2))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(FrameDecoder()),
                        MessageToByteHandler(FrameEncoder()),
                        HandshakeHandler(role: .client(ClientHandshake(config: security.handshake, nonce: PeerSecurity.nonce())), logger: logger),
                        application(),
                    ])
                }
            }
            .connect(host: host, port: port).get()
    }
}
