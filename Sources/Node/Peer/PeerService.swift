import Logging
import NIOCore
import PeerTLS
import ServiceLifecycle
import Wire

/// The node's peer listener as a service: bound before the node reports
/// ready, closed on graceful shutdown.
public final class PeerService: Service, Sendable {
    public let channel: any Channel
    private let logger: Logger

    /// Binds now, so the caller can print the bound address.
    public static func bind(
        host: String, port: Int, security: HandshakeConfig, tls: PeerTLS? = nil, logger: Logger,
        application: @escaping @Sendable () -> any ChannelHandler
    ) async throws -> PeerService {
        let channel = try await PeerTransport.listen(host: host, port: port, security: security, tls: tls, logger: logger, application: application)
        return PeerService(channel: channel, logger: logger)
    }

    private init(channel: any Channel, logger: Logger) {
        self.channel = channel
        self.logger = logger
    }

    public var address: String {
        let local = channel.localAddress
        return "\(local?.ipAddress ?? "?"):\(local?.port ?? 0)"
    }

    public func run() async throws {
        try? await gracefulShutdown()
        try? await channel.close()
        logger.info("peer listener closed")
    }
}

