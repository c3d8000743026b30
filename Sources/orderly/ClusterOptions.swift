import ArgumentParser
import Wire
import Foundation
import Membership
import Node
import PeerTLS
import Replication

extension AckPolicy: ExpressibleByArgument {}
extension PartitionMode: ExpressibleByArgument {}

/// The cluster a process talks to and the secret it proves membership
/// with (API nodes, and the roles that read from them).
struct ClusterAccessOptions: ParsableArguments {
    @Option(help: "Cluster name; peers of another cluster are refused.")
    var cluster: String = "orderly"

    @Option(help: "File holding the shared cluster secret (else ORDERLY_CLUSTER_SECRET).")
    var clusterSecretFile: String?

    @Flag(help: "Run the peer protocol in clear text and without a secret (any process that can connect is trusted).")
    var insecure = false

    @Option(help: ArgumentHelp(
        "Folder of the cluster's TLS certificates: ca.pem, and ID.pem with ID.key for this process (else ORDERLY_CERTS, else DATA/certs).",
        discussion: "`orderly certs init` makes them; `cluster up` and `demo` make them when missing. Peer links run TLS 1.3 with both ends' certificates checked against ca.pem."))
    var certs: String?

    @Option(help: "File holding the token that admin routes require (else ORDERLY_ADMIN_TOKEN). Without one, admin routes are off.")
    var adminTokenFile: String?

    static let secretBytesMin = 16

    /// The admin token, if one is configured.
    func adminToken(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String? {
        var token: String?
        if let file = adminTokenFile {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ValidationError("cannot read the admin token file \(file)")
            }
            token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        } else {
            token = environment["ORDERLY_ADMIN_TOKEN"]
        }
        guard let token, !token.isEmpty else { return nil }
        guard token.utf8.count >= Self.secretBytesMin else {
            throw ValidationError("the admin token must be at least \(Self.secretBytesMin) bytes")
        }
        return token
    }

    func validate() throws {
        guard !cluster.isEmpty, cluster.utf8.count <= 64 else { throw ValidationError("--cluster must be 1-64 bytes") }
    }

    /// This process's peer TLS (`nodeID`'s certificate), or nil with
    /// --insecure. Refuses to go on without either.
    func tls(nodeID: String, data: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> PeerTLS? {
        if insecure {
            guard certs == nil else { throw ValidationError("--insecure and --certs exclude each other: drop one") }
            return nil
        }
        guard let folder = certs ?? environment["ORDERLY_CERTS"] ?? data.map({ ($0 as NSString).appendingPathComponent("certs") }) else {
            throw ValidationError("""
                refusing to join a cluster without TLS certificates: pass --certs FOLDER (or set ORDERLY_CERTS);                 `orderly certs init --data DATA` makes them in DATA/certs. Or pass --insecure to run the peer protocol in clear text
                """)
        }
        do {
            return try PeerTLS.load(folder: folder, nodeID: nodeID)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// The secret, or nil with --insecure. Refuses to go on without either.
    func secret(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> [UInt8]? {
        var secret: [UInt8]?
        if let file = clusterSecretFile {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ValidationError("cannot read the cluster secret file \(file)")
            }
            secret = Array(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines).utf8)
        } else if let value = environment["ORDERLY_CLUSTER_SECRET"] {
            secret = Array(value.utf8)
        }
        if insecure {
            guard secret == nil else {
                throw ValidationError("--insecure and a cluster secret exclude each other: drop one")
            }
            return nil
        }
        guard let secret else {
            throw ValidationError("""
                refusing to join a cluster without a shared secret: set ORDERLY_CLUSTER_SECRET or \
                --cluster-secret-file, or pass --insecure to run the peer protocol unauthenticated
                """)
        }
        guard secret.count >= Self.secretBytesMin else {
            throw ValidationError("the cluster secret must be at least \(Self.secretBytesMin) bytes")
        }
        return secret
    }
}

/// Seeds given as host:port,... each checked.
func parseSeeds(_ seeds: String?) throws -> [String] {
    guard let seeds, !seeds.isEmpty else { return [] }
    return try seeds.split(separator: ",").map { item in
        let text = item.trimmingCharacters(in: .whitespaces)
        guard let address = HostPort(argument: text), address.port != 0 else {
            throw ValidationError("seed '\(text)' is not host:port with a port from 1 to 65535")
        }
        return address.description
    }
}

/// How a node joins a cluster: its peer address and the shared secret.
struct ClusterOptions: ParsableArguments {
    @Option(help: "Peer (cluster) address host:port; port 0 picks a free port. Without it the node runs alone.")
    var peer: HostPort?

    @OptionGroup var access: ClusterAccessOptions
    var cluster: String { access.cluster }

    @Option(help: "Peer addresses host:port,... of nodes to join through (any member will do).")
    var seeds: String?

    @Option(help: ArgumentHelp(
        "The host (name or IP address) other processes reach this node at; by default the address --peer and --http bind.",
        discussion: "Give it when a node binds 0.0.0.0 or an address others cannot reach (NAT, containers): peers, the balancer and the warehouse use it with the bound ports."))
    var advertise: String?

    @Option(help: "Nodes in each order's preference list.")
    var replicationFactor: Int = 3

    @Option(help: "When a write is acknowledged: leader (its own fsync), quorum (a majority of the order's replicas) or all (every live replica).")
    var acks: AckPolicy = .quorum

    @Option(help: "consistent: refuse writes to an order without a majority of its replicas; available: keep serving and merge after the partition heals.")
    var partitionMode: PartitionMode = .consistent

    @Option(help: "A member silent this long is suspect (it keeps its orders).")
    var suspectAfter: DurationArgument = DurationArgument(argument: "\(MembershipConfig().suspectAfterMs)ms")!

    @Option(help: "A member silent this long is dead: the next replicas lead its orders.")
    var deadAfter: DurationArgument = DurationArgument(argument: "\(MembershipConfig().deadAfterMs)ms")!

    @Option(help: ArgumentHelp(
        "The newest peer protocol version this node speaks (\(WireLimits.protocolVersions.lowerBound)-\(WireLimits.protocolVersion)); by default this release's newest.",
        discussion: "Lower it to run a node as the release before would, e.g. to rehearse a rolling upgrade (docs/operations.md)."))
    var protocolMax: UInt8?

    /// The peer protocol versions this node speaks.
    var protocolVersions: ClosedRange<UInt8> { WireLimits.protocolVersions.lowerBound...(protocolMax ?? WireLimits.protocolVersion) }

    static let secretBytesMin = ClusterAccessOptions.secretBytesMin

    func validate() throws {
        guard (1...16).contains(replicationFactor) else { throw ValidationError("--replication-factor must be 1-16") }
        _ = try seedAddresses()
        guard suspectAfter.milliseconds >= 400, deadAfter.milliseconds > suspectAfter.milliseconds else {
            throw ValidationError("--suspect-after must be at least 400ms and --dead-after longer than it")
        }
        if seeds != nil && peer == nil { throw ValidationError("--seeds needs --peer: a node joins a cluster through its peer port") }
        if let advertise {
            guard !advertise.isEmpty, !advertise.contains(":") || advertise.hasPrefix("["), !advertise.contains(" ") else {
                throw ValidationError("--advertise '\(advertise)' is not a host name or IP address (no port: the bound ports are used)")
            }
        }
        if let protocolMax, !WireLimits.protocolVersions.contains(protocolMax) {
            throw ValidationError("--protocol-max must be \(WireLimits.protocolVersions.lowerBound)-\(WireLimits.protocolVersion): this release speaks no other")
        }
    }

    /// The seeds as host:port strings, each checked.
    func seedAddresses() throws -> [String] { try parseSeeds(seeds) }

    func adminToken(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String? {
        try access.adminToken(environment: environment)
    }

    func secret(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> [UInt8]? {
        try access.secret(environment: environment)
    }

    func tls(nodeID: String, data: String?) throws -> PeerTLS? {
        try access.tls(nodeID: nodeID, data: data)
    }
}
