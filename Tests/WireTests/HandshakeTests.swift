import NIOCore
import Testing

@testable import Wire

@Suite struct HandshakeTests {
    static let secret = Array("correct horse battery staple".utf8)

    func nonce(_ seed: UInt8) -> [UInt8] { (0..<UInt8(WireLimits.nonceBytes)).map { $0 &+ seed } }

    struct Peer: Equatable {
        let id: String
        let version: UInt8
        let newest: UInt8
    }

    /// Runs the exchange between a client and a server core, as two nodes would.
    func handshake(client: HandshakeConfig, server: HandshakeConfig) -> (client: Result<String, WireError>, server: Result<String, WireError>) {
        let result = exchange(client: client, server: server)
        return (result.client.map(\.id), result.server.map(\.id))
    }

    /// The same, with the versions each side settled on. Frames travel as
    /// bytes through each side's frame codec, as on a connection.
    func exchange(client: HandshakeConfig, server: HandshakeConfig) -> (client: Result<Peer, WireError>, server: Result<Peer, WireError>) {
        var clientCore = ClientHandshake(config: client, nonce: nonce(1))
        var serverCore = ServerHandshake(config: server, nonce: nonce(2))
        let clientWire = WireVersion.client(speaking: client.versions)
        let serverWire = WireVersion.server(speaking: server.versions)
        func travel(_ frame: Frame, from sender: WireVersion, to receiver: WireVersion) throws(WireError) -> Frame {
            var bytes = ByteBuffer()
            var sent = frame
            sent.version = sender.writing
            sent.write(to: &bytes)
            var decoder = FrameDecoder(version: receiver)
            do {
                guard let received = try decoder.decode(buffer: &bytes) else { throw WireError.truncated }
                return received
            } catch let error as WireError {
                throw error
            } catch {
                throw .truncated
            }
        }
        var toServer = [clientCore.hello()]
        var clientResult: Result<Peer, WireError>?
        var serverResult: Result<Peer, WireError>?
        while let frame = toServer.first {
            toServer.removeFirst()
            var toClient: [Frame] = []
            do {
                let received = try travel(frame, from: clientWire, to: serverWire)
                for output in try serverCore.receive(received) {
                    switch output {
                    case .negotiated(let version): serverWire.settle(on: version)
                    case .send(let reply): toClient.append(reply)
                    case .established(let peer, let version, let newest): serverResult = .success(Peer(id: peer, version: version, newest: newest))
                    }
                }
            } catch {
                serverResult = .failure(error)
                toClient.append(ServerHandshake.rejection(error))
            }
            for reply in toClient {
                do {
                    let received = try travel(reply, from: serverWire, to: clientWire)
                    for output in try clientCore.receive(received) {
                        switch output {
                        case .negotiated(let version): clientWire.settle(on: version)
                        case .send(let next): toServer.append(next)
                        case .established(let peer, let version, let newest): clientResult = .success(Peer(id: peer, version: version, newest: newest))
                        }
                    }
                } catch {
                    clientResult = .failure(error)
                }
            }
        }
        return (clientResult ?? .failure(.truncated), serverResult ?? .failure(.truncated))
    }

    /// Mixed releases: each pair settles on the newest version both speak,
    /// and each side learns the newest the other speaks.
    @Test func nodesOfNeighbouringReleasesSettleOnTheNewestVersionBothSpeak() throws {
        let new = WireLimits.protocolVersions
        let old: ClosedRange<UInt8> = new.lowerBound...new.lowerBound
        let newest = new.upperBound
        let oldest = new.lowerBound
        for (clientVersions, serverVersions, settled) in [(new, new, newest), (old, new, oldest), (new, old, oldest), (old, old, oldest)] {
            let result = exchange(
                client: HandshakeConfig(cluster: "shop", nodeID: "api-1", secret: Self.secret, versions: clientVersions),
                server: HandshakeConfig(cluster: "shop", nodeID: "api-2", secret: Self.secret, versions: serverVersions))
            // Over a version-7 link the welcome names no versions: the
            // client knows only that the server speaks 7.
            let known = settled >= 8 ? serverVersions.upperBound : settled
            #expect(try result.client.get() == Peer(id: "api-2", version: settled, newest: known), "\(clientVersions) to \(serverVersions)")
            #expect(try result.server.get() == Peer(id: "api-1", version: settled, newest: clientVersions.upperBound), "\(clientVersions) to \(serverVersions)")
        }
        // A client newer than the server (the next release's hello) is
        // answered in the server's newest.
        let future = exchange(
            client: HandshakeConfig(cluster: "shop", nodeID: "api-1", secret: Self.secret, versions: 8...9),
            server: HandshakeConfig(cluster: "shop", nodeID: "api-2", secret: Self.secret, versions: 7...8))
        #expect(try future.client.get() == Peer(id: "api-2", version: 8, newest: 8))
        #expect(try future.server.get() == Peer(id: "api-1", version: 8, newest: 9))
    }

    /// Releases two apart share no version: refused on both sides with the reason.
    @Test func releasesWithoutACommonVersionAreRefused() {
        let tooOld = exchange(
            client: HandshakeConfig(cluster: "shop", nodeID: "api-1", secret: Self.secret, versions: 6...6),
            server: HandshakeConfig(cluster: "shop", nodeID: "api-2", secret: Self.secret, versions: 7...8))
        #expect(tooOld.server.failure == .unsupportedVersion(6))
        #expect(tooOld.client.failure != nil)
        let tooNew = exchange(
            client: HandshakeConfig(cluster: "shop", nodeID: "api-1", secret: Self.secret, versions: 9...10),
            server: HandshakeConfig(cluster: "shop", nodeID: "api-2", secret: Self.secret, versions: 7...8))
        #expect(tooNew.client.failure == .unsupportedVersion(8), "the answer in version 8 is one the client does not read")
    }

    /// The cluster's version is the newest every member speaks; a member not
    /// heard from counts as the oldest.
    @Test func theClusterSpeaksTheNewestVersionEveryMemberDoes() {
        let peers = PeerVersions()
        let own: ClosedRange<UInt8> = 7...8
        #expect(peers.clusterVersion(own: own, members: []) == 8)
        #expect(peers.clusterVersion(own: own, members: ["api-2"]) == 7, "not heard from yet")
        peers.record("api-2", .init(negotiated: 8, newest: 8))
        #expect(peers.clusterVersion(own: own, members: ["api-2"]) == 8)
        peers.record("api-3", .init(negotiated: 7, newest: 7))
        #expect(peers.clusterVersion(own: own, members: ["api-2", "api-3"]) == 7)
        peers.record("api-3", .init(negotiated: 8, newest: 9))
        #expect(peers.clusterVersion(own: own, members: ["api-2", "api-3"]) == 8, "never above this node's newest")
        #expect(peers.clusterVersion(own: 7...7, members: ["api-2", "api-3"]) == 7)
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

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
