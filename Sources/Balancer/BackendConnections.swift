import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import NIOSSL

/// Kept-alive connections to the backends, by address. Confined to the
/// proxy's event loop: every method runs on it.
///
/// Safe requests (GET and HEAD) that go to one backend in the same trip
/// round the event loop share a connection, pipelined (at most
/// `pipelineDepthMax` on one), and every connection written to in that
/// trip is flushed once at its end: the backend reads them in one read and
/// the kernel moves them in one segment instead of one each. Only requests
/// that arrived together wait for each other; a command (POST) always gets
/// a connection of its own. nginx and HAProxy open no pipelines to their
/// backends; this is where the proxy gains on them.
final class BackendConnections: @unchecked Sendable {
    let loop: any EventLoop
    let logger: Logger
    private var idle: [String: [BackendConnection]] = [:]
    static let idleMaxPerBackend = 256
    static let responseBytesMax = 8 << 20
    static let answerTimeout = TimeAmount.seconds(10)
    /// Safe requests pipelined on one connection at most.
    static let pipelineDepthMax = 4
    private let pipelinedCounter = Counter(label: "orderly_balancer_pipelined_requests_total")
    /// Requests sent on a connection that already carried one in flight.
    private(set) var pipelined = 0

    /// TLS to the backends (`--tls-ca`), else clear text.
    let tls: NIOSSLContext?

    init(loop: any EventLoop, tls: NIOSSLContext? = nil, logger: Logger) {
        self.loop = loop
        self.tls = tls
        self.logger = logger
    }

    /// Sends the request to `address` and gets the whole answer. A kept-alive
    /// connection the backend closed in the meantime is replaced by a new one
    /// once, without counting against the backend.
    func exchange(_ request: ProxyRequest, address: String, _ done: @escaping BackendHandler.Completion) {
        loop.preconditionInEventLoop()
        let joined = pipelineCandidate(for: request, address)
        if joined != nil {
            pipelined += 1
            pipelinedCounter.increment()
        }
        let reused = joined ?? takeIdle(address)
        guard let reused else { return connectAndSend(request, address: address, done) }
        send(request, on: reused) { result in
            if case .failure(let failure) = result, failure.noAnswer {
                self.connectAndSend(request, address: address, done)
            } else {
                done(result)
            }
        }
    }

    private func connectAndSend(_ request: ProxyRequest, address: String, _ done: @escaping BackendHandler.Completion) {
        let bound = NIOLoopBound(done, eventLoop: loop)
        connect(address).whenComplete { result in
            switch result {
            case .success(let connection): self.send(request, on: connection, bound.value)
            case .failure(let error): bound.value(.failure(error as? BackendFailure ?? BackendFailure(description: "\(error)")))
            }
        }
    }

    func closeAll() {
        for connection in idle.values.joined() { connection.channel.close(promise: nil) }
        idle = [:]
        sweep?.cancel()
    }

    /// Connections waiting for answers, checked against their deadlines
    /// once a second (one timer for all, rather than one per request).
    private var busy: [ObjectIdentifier: BackendConnection] = [:]
    private var sweep: RepeatedTask?
    /// Written to in this trip round the loop, to flush at its end; by
    /// backend, those that may take one more safe request.
    private var unflushed: [BackendConnection] = []
    private var pipelines: [String: BackendConnection] = [:]

    private func startSweeping() {
        guard sweep == nil else { return }
        sweep = loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [self] _ in
            let now = NIODeadline.now()
            for connection in busy.values where connection.deadline < now {
                connection.handler.failAnswers(BackendFailure(description: "\(connection.address) did not answer within \(Self.answerTimeout)"))
                connection.channel.close(promise: nil)
            }
        }
    }

    /// A connection that a safe request joins: one already written to in
    /// this trip, with only safe requests on it and room for one more.
    private func pipelineCandidate(for request: ProxyRequest, _ address: String) -> BackendConnection? {
        guard request.isSafe, let connection = pipelines[address] else { return nil }
        guard connection.channel.isActive, connection.handler.waiting < Self.pipelineDepthMax else {
            pipelines[address] = nil
            return nil
        }
        return connection
    }

    /// No more requests join `connection` in this trip.
    private func leavePipeline(_ connection: BackendConnection) {
        if pipelines[connection.address] === connection { pipelines[connection.address] = nil }
    }

    private func takeIdle(_ address: String) -> BackendConnection? {
        while let connection = idle[address]?.popLast() {
            if connection.channel.isActive { return connection }
        }
        return nil
    }

    private func release(_ connection: BackendConnection) {
        guard connection.channel.isActive, idle[connection.address, default: []].count < Self.idleMaxPerBackend else {
            connection.channel.close(promise: nil)
            return
        }
        idle[connection.address, default: []].append(connection)
    }

    private func connect(_ address: String) -> EventLoopFuture<BackendConnection> {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            return loop.makeFailedFuture(BackendFailure(description: "bad backend address \(address)"))
        }
        let host = String(address[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        let tls = self.tls
        return ClientBootstrap(group: loop)
            .connectTimeout(.milliseconds(500))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        // An IP address is checked against the certificate's
                        // IP names; it is not sent as SNI.
                        let name = (try? SocketAddress(ipAddress: host, port: 0)) == nil ? host : nil
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: name))
                    }
                    try channel.pipeline.syncOperations.addHandler(BackendHandler())
                }
            }
            .connect(host: host, port: port)
            .flatMapErrorThrowing { error in throw BackendFailure(description: "connect to \(address): \(error)") }
            .flatMapThrowing { channel in
                BackendConnection(channel: channel, handler: try channel.pipeline.syncOperations.handler(type: BackendHandler.self), address: address)
            }
    }

    private func send(_ request: ProxyRequest, on connection: BackendConnection, _ done: @escaping BackendHandler.Completion) {
        let channel = connection.channel
        guard channel.isActive else {
            channel.close(promise: nil)
            return done(.failure(BackendFailure(description: "connection to \(connection.address) closed", noAnswer: true)))
        }
        let key = ObjectIdentifier(connection)
        connection.handler.expect(toHEAD: request.method == "HEAD", safe: request.isSafe) { result in
            switch result {
            case .success where !connection.handler.reusable || !request.keepsBackendConnection:
                self.busy[key] = nil
                self.leavePipeline(connection)
                channel.close(promise: nil)
            case .success:
                if connection.handler.waiting == 0 {
                    self.busy[key] = nil
                    // Idle again: only through the pool from here on.
                    self.leavePipeline(connection)
                    self.release(connection)
                } else {
                    // The next answer owed is due from now.
                    connection.deadline = .now() + Self.answerTimeout
                }
            case .failure:
                self.busy[key] = nil
                self.leavePipeline(connection)
                channel.close(promise: nil)
            }
            done(result)
        }
        var bytes = request.forwardHead
        if var body = request.body { bytes.writeBuffer(&body) }
        // A failed write closes the channel, and the handler fails the
        // answers then (channelInactive).
        channel.write(bytes, promise: nil)
        if request.isSafe && request.keepsBackendConnection && connection.handler.onlySafe {
            pipelines[connection.address] = connection
        }
        if unflushed.isEmpty {
            // After everything this trip round the loop reads.
            loop.execute { [self] in
                let written = unflushed
                unflushed.removeAll(keepingCapacity: true)
                pipelines.removeAll(keepingCapacity: true)
                for connection in written { connection.channel.flush() }
            }
        }
        if unflushed.last !== connection { unflushed.append(connection) }
        if busy[key] == nil {
            connection.deadline = .now() + Self.answerTimeout
            busy[key] = connection
        }
        startSweeping()
    }
}

final class BackendConnection: @unchecked Sendable {
    let channel: any Channel
    let handler: BackendHandler
    let address: String
    /// When the oldest answer waited for is due.
    var deadline = NIODeadline.distantFuture

    init(channel: any Channel, handler: BackendHandler, address: String) {
        self.channel = channel
        self.handler = handler
        self.address = address
    }
}
