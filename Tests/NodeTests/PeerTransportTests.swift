import Logging
import NIOCore
import NIOPosix
import OrderDomain
import Synchronization
import Testing
import Wire

@testable import Node

/// Collects what reaches the application end of a peer pipeline.
final class PeerRecorder: ChannelInboundHandler, Sendable {
    typealias InboundIn = Frame

    let established = Mutex<[String]>([])
    let frames = Mutex<[Frame]>([])

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? PeerEstablished { established.withLock { $0.append(event.peerNodeID) } }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        frames.withLock { $0.append(frame) }
    }
}

/// Keeps every log line, to check that a refusal says why.
final class LogRecorder: @unchecked Sendable {
    let lines = Mutex<[String]>([])

    func logger(_ label: String) -> Logger {
        Logger(label: label) { _ in Handler(recorder: self) }
    }

    struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            recorder.lines.withLock { $0.append("\(event.level) \(event.message) \(all.map { "\($0)=\($1)" }.sorted().joined(separator: " "))") }
        }
    }
}

@Suite struct PeerTransportTests {
    static let secret = Array("s3cret".utf8)

    func security(_ node: String, _ secret: [UInt8]? = PeerTransportTests.secret) -> HandshakeConfig {
        HandshakeConfig(cluster: "test", nodeID: node, secret: secret)
    }

    @Test func peersWithTheSecretConnectAndExchangeFrames() async throws {
        let logs = LogRecorder()
        let serverSide = PeerRecorder()
        let server = try await PeerTransport.listen(host: "127.0.0.1", port: 0, security: security("api-1"), logger: logs.logger("server")) { serverSide }
        defer { try? server.close().wait() }
        let clientSide = PeerRecorder()
        let client = try await PeerTransport.connect(
            host: "127.0.0.1", port: server.localAddress!.port!, security: security("api-2"), logger: logs.logger("client")) { clientSide }
        defer { try? client.close().wait() }

        try await waitFor("both ends established") {
            serverSide.established.withLock { $0 } == ["api-2"] && clientSide.established.withLock { $0 } == ["api-1"]
        }
        try await client.writeAndFlush(Frame(type: 16, payload: ByteBuffer(string: "ping")))
        try await waitFor("the frame to arrive") { serverSide.frames.withLock { $0.count } == 1 }
        #expect(serverSide.frames.withLock { $0.first?.payload } == ByteBuffer(string: "ping"))
    }

    @Test func aWrongSecretClosesOnlyThatConnectionWithALoggedReason() async throws {
        let logs = LogRecorder()
        let serverSide = PeerRecorder()
        let server = try await PeerTransport.listen(host: "127.0.0.1", port: 0, security: security("api-1"), logger: logs.logger("server")) { serverSide }
        defer { try? server.close().wait() }
        let port = server.localAddress!.port!

        let intruder = try await PeerTransport.connect(
            host: "127.0.0.1", port: port, security: security("evil", Array("guess".utf8)), logger: logs.logger("intruder")) { PeerRecorder() }
        try await intruder.closeFuture.get()
        #expect(serverSide.established.withLock { $0 }.isEmpty)
        try await waitFor("the refusal to be logged") {
            logs.lines.withLock { $0.contains { $0.contains("closing peer connection") && $0.contains("authentication failed") } }
        }

        // The node is still up: a peer with the secret gets in.
        let friend = try await PeerTransport.connect(host: "127.0.0.1", port: port, security: security("api-2"), logger: logs.logger("friend")) { PeerRecorder() }
        defer { try? friend.close().wait() }
        try await waitFor("the good peer to be admitted") { serverSide.established.withLock { $0 } == ["api-2"] }
    }

    @Test func garbageBytesCloseTheConnection() async throws {
        let logs = LogRecorder()
        let server = try await PeerTransport.listen(host: "127.0.0.1", port: 0, security: security("api-1"), logger: logs.logger("server")) { PeerRecorder() }
        defer { try? server.close().wait() }
        let raw = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: server.localAddress!.port!).get()
        // An HTTP request read as a frame header claims a 1.2 GB frame.
        try await raw.writeAndFlush(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        try await raw.closeFuture.get()
        try await waitFor("the reason to be logged") {
            logs.lines.withLock { $0.contains { $0.contains("closing peer connection") && $0.contains("exceeds the limit") } }
        }
    }
}

/// Answers recovery requests, with a held ring when asked; keeps the requests.
final class RecoveringInbox: PeerInbox {
    let requests = Mutex<[RecoveryRequest]>([])

    func receive(_ message: PeerMessage, from sender: String) {}

    func answer(_ request: PeerRequest, from sender: String) async -> PeerReply {
        guard case .recovery(let recovery) = request else { return request.refused("only recovery here") }
        requests.withLock { $0.append(recovery) }
        return .recovery(RecoveryReply(promises: [:], holdsAnything: true, recovering: false, heldRing: recovery.wantsRing ? ["api-1", "api-3"] : nil))
    }
}

/// Answers every request with a reply of its kind that names the request.
struct EchoInbox: PeerInbox {
    func receive(_ message: PeerMessage, from sender: String) {}

    func answer(_ request: PeerRequest, from sender: String) async -> PeerReply {
        request.refused("\(sender) asked")
    }
}

@Suite struct PeerCallTests {
    /// Every kind of call crosses real sockets and its answer finds its
    /// caller. (Grant and recovery answers were once dropped by the
    /// client, which only knew the older reply types: every call timed
    /// out, and the simulator, which has its own network, did not see it.)
    @Test func everyKindOfCallIsAnsweredOverTheWire() async throws {
        let logger = Logger(label: "test")
        let server = try await PeerTransport.listen(
            host: "127.0.0.1", port: 0, security: HandshakeConfig(cluster: "t", nodeID: "api-1", secret: PeerTransportTests.secret), logger: logger
        ) { Dispatcher.serverHandler(EchoInbox(), logger: logger) }
        defer { try? server.close().wait() }
        let clients = PeerClients(security: HandshakeConfig(cluster: "t", nodeID: "api-2", secret: PeerTransportTests.secret), logger: logger)
        let address = "127.0.0.1:\(server.localAddress!.port!)"
        let term = Term(number: 3, leader: "api-2")
        let requests: [PeerRequest] = [
            .forward(ForwardRequest(timeoutMs: 1000, orderID: ClientID("o-1")!, call: .read)),
            .fetch(FetchRequest(follower: "api-2", scope: .log(origin: "api-1", fromOffset: 1, eventsMax: 10, waitMs: 0))),
            .view,
            .grant(GrantRequest(group: "api-1,api-2,api-3", term: term)),
            .recovery(RecoveryRequest(node: "api-2")),
            .store(StoreRequest(events: [])),
        ]
        for request in requests {
            // A deadline, not a timing: the suite's first seconds start every
            // test at once and CI once took over 10 s to connect.
            let reply = try await clients.call(request, to: address, timeout: .seconds(60))
            #expect(reply == request.refused("api-2 asked"), "the answer to \(request)")
        }
        await clients.closeAll()
    }

    /// Protocol 10's request for the ring a peer holds never reaches a peer
    /// of the release before, which would refuse the frame: over a
    /// connection that settled on version 9 the flag is left off, and the
    /// reply says nothing of a ring (the leaving node cannot count on it).
    @Test func aRecoveryAsksForTheHeldRingOnlyOverAVersion10Connection() async throws {
        let logger = Logger(label: "test")
        for (serverVersions, asked) in [(WireLimits.protocolVersions, true), (WireLimits.protocolVersions.lowerBound...9, false)] {
            let inbox = RecoveringInbox()
            let server = try await PeerTransport.listen(
                host: "127.0.0.1", port: 0,
                security: HandshakeConfig(cluster: "t", nodeID: "api-1", secret: PeerTransportTests.secret, versions: serverVersions), logger: logger
            ) { Dispatcher.serverHandler(inbox, logger: logger) }
            defer { try? server.close().wait() }
            let clients = PeerClients(security: HandshakeConfig(cluster: "t", nodeID: "api-2", secret: PeerTransportTests.secret), logger: logger)
            let reply = try await clients.call(
                .recovery(RecoveryRequest(node: "api-2", wantsRing: true)), to: "127.0.0.1:\(server.localAddress!.port!)", timeout: .seconds(60))
            #expect(inbox.requests.withLock { $0.map(\.wantsRing) } == [asked], "a server speaking \(serverVersions)")
            #expect(reply == .recovery(RecoveryReply(promises: [:], holdsAnything: true, recovering: false, heldRing: asked ? ["api-1", "api-3"] : nil)))
            await clients.closeAll()
        }
    }
}
