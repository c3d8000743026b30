import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PeerTLS
import Testing
import Wire
import X509

@testable import Node

/// Certificates made for a test: the cluster's CA and a stranger CA.
struct TestAuthority {
    let authority: (certificate: Certificate, key: Certificate.PrivateKey)

    init(name: String = "test cluster CA") throws {
        authority = try ClusterCertificates.makeAuthority(name: name, notBefore: Date() - 3600, notAfter: Date() + 86_400)
    }

    var nioCertificate: NIOSSLCertificate {
        get throws { try NIOSSLCertificate(bytes: Array(try authority.certificate.serializeAsPEM().pemString.utf8), format: .pem) }
    }

    /// A node's TLS: a certificate naming `named` (valid from `from` to
    /// `until`), trusting `trusting` (this CA by default).
    func tls(
        _ named: String, from: Date = Date() - 3600, until: Date = Date() + 86_400, trusting: TestAuthority? = nil
    ) throws -> PeerTLS {
        let issued = try ClusterCertificates.issue(id: named, authority: authority, notBefore: from, notAfter: until)
        return try PeerTLS(
            nodeID: named, authority: [try (trusting ?? self).nioCertificate],
            chain: [try NIOSSLCertificate(bytes: Array(try issued.certificate.serializeAsPEM().pemString.utf8), format: .pem)],
            key: try NIOSSLPrivateKey(bytes: Array(try issued.key.serializeAsPEM().pemString.utf8), format: .pem))
    }
}

/// Peer links over TLS 1.3 with both ends' certificates checked: each bad
/// peer is refused with the reason logged, and the node goes on serving.
@Suite struct PeerTLSTests {
    let cluster: TestAuthority
    let serverTLS: PeerTLS
    /// The server's log lines, and the clients'.
    let logs = LogRecorder()
    let clientLogs = LogRecorder()

    init() throws {
        cluster = try TestAuthority()
        serverTLS = try cluster.tls("api-1")
    }

    func security(_ node: String) -> HandshakeConfig {
        HandshakeConfig(cluster: "test", nodeID: node, secret: PeerTransportTests.secret)
    }

    /// api-1 listening with TLS; `deadline` bounds a handshake.
    func listen(deadline: TimeAmount = PeerTransport.handshakeDeadline, recorder: PeerRecorder) async throws -> any Channel {
        try await PeerTransport.listen(
            host: "127.0.0.1", port: 0, security: security("api-1"), tls: serverTLS, logger: logs.logger("server"), handshakeDeadline: deadline
        ) { recorder }
    }

    func connect(_ port: Int, as node: String, tls: PeerTLS?, recorder: PeerRecorder = PeerRecorder()) async throws -> any Channel {
        try await PeerTransport.connect(host: "127.0.0.1", port: port, security: security(node), tls: tls, logger: clientLogs.logger("client \(node)")) {
            recorder
        }
    }

    /// The connection is closed (by the side that refused it) in time.
    func expectClosed(_ channel: any Channel) async throws {
        try await waitFor("the refused connection to be closed", timeout: .seconds(30)) { !channel.isActive }
    }

    /// After a refusal the server still admits a good peer, and frames flow.
    func expectStillServing(_ port: Int, _ serverSide: PeerRecorder) async throws {
        var goodSide = PeerRecorder()
        var good = try await connect(port, as: "api-2", tls: try cluster.tls("api-2"), recorder: goodSide)
        defer { try? good.close().wait() }
        try await waitFor("a good peer to be admitted") {
            if good.isActive && serverSide.established.withLock({ $0 }).allSatisfy({ $0 == "api-2" })
                && !serverSide.established.withLock({ $0 }).isEmpty && goodSide.established.withLock({ $0 }) == ["api-1"]
            {
                return true
            }
            // A server with a short handshake deadline closes a good peer
            // too when the loaded machine does not finish the handshake in
            // time (seen in a full `swift test`), whichever end had finished
            // its side: such a peer connects again.
            if !good.isActive {
                goodSide = PeerRecorder()
                good = try await connect(port, as: "api-2", tls: try cluster.tls("api-2"), recorder: goodSide)
            }
            return false
        }
        try await good.writeAndFlush(Frame(type: 16, payload: ByteBuffer(string: "ping")))
        try await waitFor("its frame to arrive") { serverSide.frames.withLock { $0.count } == 1 }
    }

    @Test func peersOfTheClusterConnectOverTLS13() async throws {
        let serverSide = PeerRecorder()
        let server = try await listen(recorder: serverSide)
        defer { try? server.close().wait() }
        let clientSide = PeerRecorder()
        let client = try await connect(server.localAddress!.port!, as: "api-2", tls: try cluster.tls("api-2"), recorder: clientSide)
        defer { try? client.close().wait() }
        try await waitFor("both ends established") {
            serverSide.established.withLock { $0 } == ["api-2"] && clientSide.established.withLock { $0 } == ["api-1"]
        }
        #expect(try await client.nioSSL_tlsVersion().get() == .tlsv13)
        try await client.writeAndFlush(Frame(type: 16, payload: ByteBuffer(string: "ping")))
        try await waitFor("the frame to arrive") { serverSide.frames.withLock { $0.count } == 1 }
        #expect(serverSide.frames.withLock { $0.first?.payload } == ByteBuffer(string: "ping"))
    }

    /// A client claiming api-2 with `tls` (none: clear text) is refused:
    /// its connection closes, nobody is admitted on either side, the
    /// server logs `reason`, and then it admits a good peer.
    func expectRefused(tls: PeerTLS?, reason: String) async throws {
        let serverSide = PeerRecorder()
        let server = try await listen(recorder: serverSide)
        defer { try? server.close().wait() }
        let port = server.localAddress!.port!
        let clientSide = PeerRecorder()
        let client = try await connect(port, as: "api-2", tls: tls, recorder: clientSide)
        try await expectClosed(client)
        #expect(clientSide.established.withLock { $0 }.isEmpty)
        try await refused(text: reason, serverSide)
        try await expectStillServing(port, serverSide)
    }

    @Test func aCertificateFromAnotherCAIsRefused() async throws {
        // It trusts the cluster's CA, so only the server has cause to refuse.
        let stranger = try TestAuthority(name: "another CA")
        try await expectRefused(tls: try stranger.tls("api-2", trusting: cluster), reason: "certificate was refused")
    }

    @Test func anExpiredCertificateIsRefused() async throws {
        let expired = try cluster.tls("api-2", from: Date() - 3 * 86_400, until: Date() - 86_400)
        try await expectRefused(tls: expired, reason: "certificate was refused")
    }

    @Test func aServerWithAnExpiredCertificateIsRefusedByItsClient() async throws {
        let logs = LogRecorder()
        let server = try await PeerTransport.listen(
            host: "127.0.0.1", port: 0, security: security("api-1"),
            tls: try cluster.tls("api-1", from: Date() - 3 * 86_400, until: Date() - 86_400), logger: logs.logger("server")
        ) { PeerRecorder() }
        defer { try? server.close().wait() }
        let clientSide = PeerRecorder()
        let client = try await PeerTransport.connect(
            host: "127.0.0.1", port: server.localAddress!.port!, security: security("api-2"), tls: try cluster.tls("api-2"),
            logger: logs.logger("client")
        ) { clientSide }
        try await expectClosed(client)
        #expect(clientSide.established.withLock { $0 }.isEmpty)
        try await waitFor("the client to log why") {
            logs.lines.withLock { $0.contains { $0.contains("closing peer connection") && $0.contains("certificate was refused") } }
        }
    }

    @Test func aCertificateNamingAnotherNodeIsRefused() async throws {
        // A real member's certificate (api-3), used by a peer that claims
        // to be api-2: TLS accepts it, the handshake does not.
        try await expectRefused(tls: try cluster.tls("api-3"), reason: "peer claims to be api-2 but its certificate names api-3")
    }

    @Test func aClearTextClientOnTheTLSPortIsRefused() async throws {
        try await expectRefused(tls: nil, reason: "does not speak TLS")
    }

    @Test func aTLSHandshakeCutHalfWayIsClosedAtTheDeadline() async throws {
        let serverSide = PeerRecorder()
        let server = try await listen(deadline: .milliseconds(500), recorder: serverSide)
        defer { try? server.close().wait() }
        let port = server.localAddress!.port!
        // The first bytes of a ClientHello record (handshake, TLS 1.0
        // record version, 512 bytes announced), then nothing more.
        let raw = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
        // (On a loaded machine the deadline may pass before the write.)
        try? await raw.writeAndFlush(ByteBuffer(bytes: [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03]))
        try await expectClosed(raw)
        try await refused(text: "the handshake did not finish within 500 ms", serverSide)

        // Cut by closing instead: the server sees the end mid-handshake.
        let cut = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
        try? await cut.writeAndFlush(ByteBuffer(bytes: [0x16, 0x03, 0x01, 0x02, 0x00, 0x01]))
        try? await cut.close()
        try await expectStillServing(port, serverSide)
    }

    /// The server logged a refusal naming `text`, and admitted no one.
    func refused(text: String, _ serverSide: PeerRecorder) async throws {
        try await waitFor("the server to log a refusal naming '\(text)'") {
            logs.lines.withLock { $0.contains { $0.contains("closing peer connection") && $0.contains(text) } }
        }
        #expect(serverSide.established.withLock { $0 }.isEmpty)
    }
}
