import ArgumentParser
import Foundation
import Logging
import Node
import NIOSSL
import Prometheus
import Wire

/// What every role that follows the API nodes' logs (stats, wms) is started
/// with. The id and the HTTP address default per role (`Role`).
struct FollowerRoleOptions: ParsableArguments {
    @Option(help: "Node id (1-64 of A-Z a-z 0-9 . _ -; default: the role's name, stats or wms).")
    var id: String?

    @Option(help: "Data folder; the role's file goes to DATA/<role>/<role>.sqlite.")
    var data: String

    @Option(help: "HTTP address host:port; port 0 picks a free port (default: 127.0.0.1:8090 for stats, 127.0.0.1:8091 for wms).")
    var http: HostPort?

    @Option(help: "Peer addresses host:port,... of API nodes (any member will do).")
    var seeds: String

    @OptionGroup(title: "Cluster")
    var access: ClusterAccessOptions

    @OptionGroup(title: "HTTPS")
    var https: HTTPSOptions

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    struct Role {
        let name: String
        let defaultHTTP: String
    }

    func validate() throws {
        if let id { try validateNodeID(id) }
        guard !(try parseSeeds(seeds)).isEmpty else { throw ValidationError("--seeds needs at least one API node's peer address") }
    }

    /// Everything a follower role needs to start: its id and address, the
    /// logger with its node metadata, the metrics registry, peer clients
    /// holding the cluster secret, and where its SQLite file goes.
    struct Started {
        let id: String
        let http: HostPort
        let seeds: [String]
        let file: String
        let logger: Logger
        let registry: PrometheusCollectorRegistry
        let clients: PeerClients
        let adminToken: String?
        let tls: TLSConfiguration?
    }

    func start(_ role: Role) throws -> Started {
        let id = self.id ?? role.name
        let seedAddresses = try parseSeeds(seeds)
        let secret = try access.secret()
        let tls = try access.tls(nodeID: id, data: data)
        let adminToken = try access.adminToken()
        Bootstrap.logging(level: logLevel)
        let registry = Bootstrap.metrics()
        var logger = Logger(label: "orderly.\(role.name)")
        logger[metadataKey: "node"] = "\(id)"
        let clients = PeerClients(security: HandshakeConfig(cluster: access.cluster, nodeID: id, secret: secret), tls: tls, logger: logger)
        return Started(
            id: id, http: http ?? HostPort(argument: role.defaultHTTP)!, seeds: seedAddresses,
            file: (data as NSString).appendingPathComponent("\(role.name)/\(role.name).sqlite"), logger: logger, registry: registry,
            clients: clients, adminToken: adminToken, tls: try https.server())
    }
}
