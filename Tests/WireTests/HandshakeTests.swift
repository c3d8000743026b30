import NIOCore
import Testing

@testable import Wire

@Suite struct HandshakeTests {
    static let secret = Array("correct horse battery staple".utf8)

    func nonce(_ seed: UInt8) -> [UInt8] { (0..<UInt8(WireLimits.nonceBytes)).map { $0 &+ seed } }

    /// Runs the exchange between a client and a server core, as two nodes would.
    func handshake(client: HandshakeConfig, server: HandshakeConfig) -> (client: Result<String, WireError>, server: Result<String, WireError>) {
        var clientCore = ClientHandshake(config: client, nonce: nonce(1))
        var serverCore = ServerHandshake(config: server, nonce: nonce(2))
        var toServer = [clientCore.hello()]
        var clientResult: Result<String, WireError>?
        var serverResult: Result<String, WireError>?
        while let frame = toServer.first {
            toServer.removeFirst()
            var toClient: [Frame] = []
            do {
                for output in try serverCore.receive(frame) {
                    switch output {
                    case .send(let reply): toClient.append(reply)
                    case .established(let peer): serverResult = .success(peer)
                    }
                }
            } catch {
                serverResult = .failure(error)
                toClient.append(ServerHandshake.rejection(error))
            }
            for reply in toClient {
                do {
                    for output in try clientCore.receive(reply) {
                        switch output {
                        case .send(let next): toServer.append(next)
                        case .established(let peer): clientResult = .success(peer)
                        }
                    }
                } catch {
                    clientResult = .failure(error)
                }
            }
        }
        return (clientResult ?? .failure(.truncated), serverResult ?? .failure(.truncated))
    }

    @Test func nodesWithTheSameSecretAuthenticateEachOther() throws {
        let result = handshake(
            client: HandshakeConfig(cluster: "shop", nodeID: "api-1", secret: Self.secret),
            server: HandshakeConfig(cluster: "shop", nodeID: "api-2", secret: Self.secret))
        #expect(try result.client.get() == "api-2")
        #expect(try result.server.get() == "api-1")
    }

    @Test func aWrongSecretIsRefusedOnBothSides() {
        let result = handshake(
            client: HandshakeConfig(cluster: "shop", nodeID: "api-1", secret: Array("guess".utf8)),
            server: HandshakeConfig(cluster: "shop", nodeID: "api-2", secret: Self.secret))
        guard case .failure(.authenticationFailed) = result.client else {
            Issue.record("client must refuse a server that cannot prove the secret: \(result.client)")
            return
        }
        guard case .failure = result.server else {
            Issue.record("server must not admit the client: \(result.server)")
            return
        }
    }

    @Test func anImpostorServerCannotReplayAProof() {
        // A server without the secret answers with an empty proof: refused.
        let result = handshake(
            client: HandshakeConfig(cluster: "shop", nodeID: "api-1", secret: Self.secret),
            server: HandshakeConfig(cluster: "shop", nodeID: "api-2", secret: nil))
        guard case .failure(.authenticationFailed) = result.server else {
            Issue.record("a secured client and an insecure server must not connect: \(result.server)")
            return
        }
        guard case .failure(.authenticationFailed) = result.client else {
            Issue.record("\(result.client)")
            return
        }
    }

    @Test func anotherClusterIsRefused() {
        let result = handshake(
            client: HandshakeConfig(cluster: "other", nodeID: "api-1", secret: Self.secret),
            server: HandshakeConfig(cluster: "shop", nodeID: "api-2", secret: Self.secret))
        #expect(result.server == .failure(.wrongCluster(expected: "shop", got: "other")))
    }

    @Test func insecureNodesConnectOnlyToInsecureNodes() throws {
        let result = handshake(
            client: HandshakeConfig(cluster: "shop", nodeID: "api-1", secret: nil),
            server: HandshakeConfig(cluster: "shop", nodeID: "api-2", secret: nil))
        #expect(try result.server.get() == "api-1")
        #expect(try result.client.get() == "api-2")
    }

    @Test func garbageAndOutOfOrderFramesThrowWithoutTrapping() {
        let config = HandshakeConfig(cluster: "shop", nodeID: "api-2", secret: Self.secret)
        for payload in [[], [0xFF], [0x00, 0x04, 0x73], Array(repeating: 0xFF, count: 300)] as [[UInt8]] {
            var server = ServerHandshake(config: config, nonce: nonce(2))
            #expect(throws: WireError.self) { try server.receive(Frame(type: HandshakeFrame.hello.rawValue, payload: ByteBuffer(bytes: payload))) }
        }
        var server = ServerHandshake(config: config, nonce: nonce(2))
        #expect(throws: WireError.self) { try server.receive(Frame(type: HandshakeFrame.proof.rawValue, payload: ByteBuffer())) }
        var client = ClientHandshake(config: config, nonce: nonce(1))
        #expect(throws: WireError.self) { try client.receive(Frame(type: HandshakeFrame.welcome.rawValue, payload: ByteBuffer())) }
    }
}
