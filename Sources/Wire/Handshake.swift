import Crypto
import NIOCore
import Synchronization

public struct HandshakeConfig: Sendable {
    public var cluster: String
    public var nodeID: String
    /// The shared cluster secret; nil runs without authentication (`--insecure`).
    public var secret: [UInt8]?
    /// The peer protocol versions this node speaks (`--protocol-max` lowers
    /// the newest, as an older release would have it).
    public var versions: ClosedRange<UInt8>
    /// Where handshakes note what each peer speaks.
    public let peers: PeerVersions

    public init(
        cluster: String, nodeID: String, secret: [UInt8]?, versions: ClosedRange<UInt8> = WireLimits.protocolVersions,
        peers: PeerVersions = PeerVersions()
    ) {
        self.cluster = cluster
        self.nodeID = nodeID
        self.secret = secret
        self.versions = versions
        self.peers = peers
    }

    /// A fresh nonce for one handshake, from the system's secure generator.
    public static func randomNonce() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<WireLimits.nonceBytes).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    /// HMAC-SHA256 over a role label and the session's values, so a proof is
    /// good for one direction of one session only.
    func proof(role: String, _ parts: [[UInt8]]) -> [UInt8] {
        guard let secret else { return [] }
        var mac = HMAC<SHA256>(key: SymmetricKey(data: secret))
        mac.update(data: Array("orderly-\(role)|".utf8))
        for part in parts {
            mac.update(data: [UInt8(part.count >> 8), UInt8(part.count & 0xFF)])
            mac.update(data: part)
        }
        return Array(mac.finalize())
    }

    func verify(_ proof: [UInt8], role: String, _ parts: [[UInt8]]) -> Bool {
        guard secret != nil else { return proof.isEmpty }
        return self.proof(role: role, parts).constantTimeEquals(proof)
    }
}

extension Array where Element == UInt8 {
    func constantTimeEquals(_ other: [UInt8]) -> Bool {
        guard count == other.count else { return false }
        var difference: UInt8 = 0
        for index in indices { difference |= self[index] ^ other[index] }
        return difference == 0
    }
}

public enum HandshakeOutput: Sendable, Equatable {
    /// The connection speaks this version from now on (before the next send).
    case negotiated(UInt8)
    case send(Frame)
    /// Authenticated: application frames may flow, in `version`; the peer
    /// speaks up to `peerNewest`.
    case established(peerNodeID: String, version: UInt8, peerNewest: UInt8)
}

/// What each peer speaks, as its latest handshake showed.
public final class PeerVersions: Sendable {
    public struct Peer: Sendable, Equatable {
        /// The version the latest connection with it speaks.
        public let negotiated: UInt8
        /// The newest version it speaks.
        public let newest: UInt8

        public init(negotiated: UInt8, newest: UInt8) {
            self.negotiated = negotiated
            self.newest = newest
        }
    }

    private let peers = Mutex<[String: Peer]>([:])

    public init() {}

    public func record(_ node: String, _ peer: Peer) { peers.withLock { $0[node] = peer } }

    public var all: [String: Peer] { peers.withLock { $0 } }

    /// The version the whole cluster can speak: the newest every member
    /// does, this node included. A member not heard from since this node
    /// started counts as the oldest this node speaks, so the cluster moves
    /// up only once every member has shown it can.
    public func clusterVersion(own: ClosedRange<UInt8>, members: [String]) -> UInt8 {
        let known = all
        return members.reduce(own.upperBound) { lowest, member in min(lowest, known[member]?.newest ?? own.lowerBound) }
    }
}

/// Mutual challenge-response, client side. Pure: nonces come in from the
/// shell, frames go out as outputs.
///
///     client -> hello(cluster, node, secured, client nonce)
///     server -> challenge(node, secured, server nonce, server proof)
///     client -> proof(client proof)
///     server -> welcome([oldest, newest version it speaks] from version 8)
///
/// The hello goes in the client's newest version and never changes shape;
/// the server answers in the older of that and its own newest, which both
/// then speak.
public struct ClientHandshake: Sendable {
    private enum State { case awaitingChallenge, awaitingWelcome(peer: String, version: UInt8), done }

    private let config: HandshakeConfig
    private let nonce: [UInt8]
    private var state = State.awaitingChallenge

    public init(config: HandshakeConfig, nonce: [UInt8]) {
        precondition(nonce.count == WireLimits.nonceBytes, "nonce must be \(WireLimits.nonceBytes) bytes")
        self.config = config
        self.nonce = nonce
    }

    public func hello() -> Frame {
        var payload = ByteBuffer()
        payload.writeLengthPrefixed(config.cluster)
        payload.writeLengthPrefixed(config.nodeID)
        payload.writeInteger(UInt8(config.secret == nil ? 0 : 1))
        payload.writeLengthPrefixed(nonce)
        return Frame(type: HandshakeFrame.hello.rawValue, payload: payload, version: config.versions.upperBound)
    }

    public mutating func receive(_ frame: Frame) throws(WireError) -> [HandshakeOutput] {
        var reader = PayloadReader(frame.payload)
        if frame.type == HandshakeFrame.reject.rawValue {
            throw .authenticationFailed("peer refused: \(try reader.string("reason", max: 1024))")
        }
        switch state {
        case .awaitingChallenge:
            guard frame.type == HandshakeFrame.challenge.rawValue else { throw .unexpectedMessage("type \(frame.type) before the challenge") }
            guard config.versions.contains(frame.version) else { throw .unsupportedVersion(frame.version) }
            let peer = try reader.string("node id")
            let secured = try reader.integer("secured", as: UInt8.self) == 1
            let serverNonce = try reader.bytes("nonce", max: WireLimits.nonceBytes)
            let serverProof = try reader.bytes("proof", max: 64)
            try reader.finish("challenge")
            guard secured == (config.secret != nil) else {
                throw .authenticationFailed(secured ? "peer requires the cluster secret and this node has none" : "peer runs without a secret (--insecure)")
            }
            guard serverNonce.count == WireLimits.nonceBytes else { throw .malformed("nonce must be \(WireLimits.nonceBytes) bytes") }
            let parts = [Array(config.cluster.utf8), Array(peer.utf8), Array(config.nodeID.utf8), nonce, serverNonce]
            guard config.verify(serverProof, role: "server", parts) else { throw .authenticationFailed("peer does not know the cluster secret") }
            var payload = ByteBuffer()
            payload.writeLengthPrefixed(config.proof(role: "client", parts))
            state = .awaitingWelcome(peer: peer, version: frame.version)
            return [.negotiated(frame.version), .send(Frame(type: HandshakeFrame.proof.rawValue, payload: payload, version: frame.version))]
        case .awaitingWelcome(let peer, let version):
            guard frame.type == HandshakeFrame.welcome.rawValue else { throw .unexpectedMessage("type \(frame.type) before welcome") }
            var newest = version
            if version >= 8 {
                let oldest = try reader.integer("oldest version", as: UInt8.self)
                newest = try reader.integer("newest version", as: UInt8.self)
                guard oldest <= version, version <= newest else { throw .malformed("welcome: versions \(oldest)-\(newest) do not include \(version)") }
            }
            try reader.finish("welcome")
            state = .done
            return [.established(peerNodeID: peer, version: version, peerNewest: newest)]
        case .done:
            throw .unexpectedMessage("handshake frame after the handshake")
        }
    }
}

/// Mutual challenge-response, server side.
public struct ServerHandshake: Sendable {
    private enum State { case awaitingHello, awaitingProof(peer: String, parts: [[UInt8]], version: UInt8, peerNewest: UInt8), done }

    private let config: HandshakeConfig
    private let nonce: [UInt8]
    private var state = State.awaitingHello

    public init(config: HandshakeConfig, nonce: [UInt8]) {
        precondition(nonce.count == WireLimits.nonceBytes, "nonce must be \(WireLimits.nonceBytes) bytes")
        self.config = config
        self.nonce = nonce
    }

    /// The frame to send before closing after `error`, so the peer logs why.
    public static func rejection(_ error: WireError) -> Frame {
        var payload = ByteBuffer()
        payload.writeLengthPrefixed(error.description.prefix(utf8Bytes: 1024))
        return Frame(type: HandshakeFrame.reject.rawValue, payload: payload)
    }

    public mutating func receive(_ frame: Frame) throws(WireError) -> [HandshakeOutput] {
        var reader = PayloadReader(frame.payload)
        switch state {
        case .awaitingHello:
            guard frame.type == HandshakeFrame.hello.rawValue else { throw .unexpectedMessage("type \(frame.type) before hello") }
            guard frame.version >= config.versions.lowerBound else { throw .unsupportedVersion(frame.version) }
            let version = min(frame.version, config.versions.upperBound)
            let cluster = try reader.string("cluster")
            let peer = try reader.string("node id")
            let secured = try reader.integer("secured", as: UInt8.self) == 1
            let clientNonce = try reader.bytes("nonce", max: WireLimits.nonceBytes)
            try reader.finish("hello")
            guard cluster == config.cluster else { throw .wrongCluster(expected: config.cluster, got: cluster) }
            guard secured == (config.secret != nil) else {
                throw .authenticationFailed(secured ? "peer has a cluster secret and this node runs --insecure" : "peer has no cluster secret")
            }
            guard clientNonce.count == WireLimits.nonceBytes, !peer.isEmpty else { throw .malformed("bad hello") }
            let parts = [Array(cluster.utf8), Array(config.nodeID.utf8), Array(peer.utf8), clientNonce, nonce]
            var payload = ByteBuffer()
            payload.writeLengthPrefixed(config.nodeID)
            payload.writeInteger(UInt8(config.secret == nil ? 0 : 1))
            payload.writeLengthPrefixed(nonce)
            payload.writeLengthPrefixed(config.proof(role: "server", parts))
            state = .awaitingProof(peer: peer, parts: parts, version: version, peerNewest: frame.version)
            return [.negotiated(version), .send(Frame(type: HandshakeFrame.challenge.rawValue, payload: payload, version: version))]
        case .awaitingProof(let peer, let parts, let version, let peerNewest):
            guard frame.type == HandshakeFrame.proof.rawValue else { throw .unexpectedMessage("type \(frame.type) before the proof") }
            let proof = try reader.bytes("proof", max: 64)
            try reader.finish("proof")
            guard config.verify(proof, role: "client", parts) else { throw .authenticationFailed("peer does not know the cluster secret") }
            state = .done
            var welcome = ByteBuffer()
            if version >= 8 {
                welcome.writeInteger(config.versions.lowerBound)
                welcome.writeInteger(config.versions.upperBound)
            }
            return [
                .send(Frame(type: HandshakeFrame.welcome.rawValue, payload: welcome, version: version)),
                .established(peerNodeID: peer, version: version, peerNewest: peerNewest),
            ]
        case .done:
            throw .unexpectedMessage("handshake frame after the handshake")
        }
    }
}
