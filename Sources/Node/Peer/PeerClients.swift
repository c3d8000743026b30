import Logging
import Membership
import NIOConcurrencyHelpers
import NIOCore
import OrderDomain
import NodeRuntime
import PeerTLS
import Replication
import Wire

/// One outgoing connection per peer, shared by all forwarded calls to it.
/// Calls carry a correlation id; a reply that does not come before the
/// deadline fails the call, and a closed connection fails all its calls.
public actor PeerClients: PeerNetwork {
    private let security: HandshakeConfig
    private let tls: PeerTLS?
    private let logger: Logger
    /// One connection attempt per peer, shared by every caller: a caller
    /// never writes on a connection whose handshake has not finished.
    private var connections: [String: Task<PeerConnection, any Error>] = [:]
    /// The connections made, by address: a call on an open one waits for
    /// nothing.
    private var established: [String: PeerConnection] = [:]
    private var nextCorrelationID: UInt64 = 1
    public nonisolated let filter: PeerFilter

    public init(security: HandshakeConfig, tls: PeerTLS? = nil, filter: PeerFilter = PeerFilter(), logger: Logger) {
        self.security = security
        self.tls = tls
        self.filter = filter
        self.logger = logger
    }

    public func send(_ message: PeerMessage, to address: String, timeout: Duration) async {
        guard let connection = try? await connection(to: address, timeout: timeout) else { return }
        connection.channel.writeAndFlush(PeerCodec.encode(message), promise: nil)
    }

    /// Sends the request to the peer at `address` (host:port) and waits for
    /// its reply, at most `timeout` in all (connecting included).
    public func call(_ request: PeerRequest, to address: String, timeout: Duration) async throws -> PeerReply {
        let deadline = ContinuousClock.now + timeout
        let connection = try await connection(to: address, timeout: timeout)
        let correlationID = nextCorrelationID
        nextCorrelationID += 1
        let remaining = deadline - ContinuousClock.now
        guard remaining > .zero else { throw EngineError.unavailable("could not reach \(address) within \(timeout)") }
        var request = request
        if case .forward(var forward) = request {
            // The leader drops work its caller no longer waits for.
            forward.timeoutMs = UInt32(clamping: max(0, remaining.milliseconds))
            request = .forward(forward)
        }
        if case .grant(var grant) = request, grant.wantsHeld, connection.handler.version < GrantRequest.heldSinceVersion {
            // A peer of the release before reads no such flag.
            grant.wantsHeld = false
            request = .grant(grant)
        }
        if case .recovery(var recovery) = request, recovery.wantsRing, connection.handler.version < RecoveryRequest.ringSinceVersion {
            recovery.wantsRing = false
            request = .recovery(recovery)
        }
        let frame = try await connection.exchange(PeerCodec.encode(request, correlationID: correlationID), correlationID: correlationID, timeout: remaining)
        try checkNotCut(address)
        guard case .reply(_, let reply)? = try PeerCodec.decode(frame) else {
            throw WireError.malformed("\(address) answered with frame type \(frame.type)")
        }
        return reply
    }

    /// A reply that was in flight when the partition switch cut its peer
    /// off is dropped, as the network would have dropped it.
    private nonisolated func checkNotCut(_ address: String) throws {
        if filter.blocks(address: address) {
            throw EngineError.unavailable("\(address) is cut off by the partition switch")
        }
    }

    private func connection(to address: String, timeout: Duration) async throws -> PeerConnection {
        if filter.blocks(address: address) {
            // Partitioned: close what is open so calls on it fail too.
            established[address] = nil
            if let attempt = connections.removeValue(forKey: address) {
                Task { (try? await attempt.value)?.channel.close(promise: nil) }
            }
            throw EngineError.unavailable("\(address) is cut off by the partition switch")
        }
        if let connection = established[address] {
            if connection.isOpen { return connection }
            established[address] = nil
        }
        if let attempt = connections[address] {
            switch await Self.wait(for: attempt, timeout: timeout) {
            case .connected(let connection) where connection.isOpen:
                established[address] = connection
                return connection
            case .timedOut: throw EngineError.unavailable("could not reach \(address) within \(timeout)")
            case .connected, .failed:
                // Failed or closed: the first caller to get here replaces it.
                if connections[address] == attempt { connections[address] = nil }
            }
        }
        let attempt: Task<PeerConnection, any Error>
        if let replaced = connections[address] {
            attempt = replaced
        } else {
            // The attempt is not bound to this caller's deadline: it goes on
            // for the handshake's own deadline (TLS and the protocol's
            // handshake take four round trips), and a later caller finds it
            // done. Cut at each caller's deadline, as it was, on a loaded
            // machine or a slow link no attempt finished within a gossip
            // send's 500 ms, and the peer was never reached.
            let (security, tls, logger) = (self.security, self.tls, self.logger)
            attempt = Task {
                try await Self.open(address, security: security, tls: tls, logger: logger, timeout: .nanoseconds(PeerTransport.handshakeDeadline.nanoseconds))
            }
            connections[address] = attempt
        }
        switch await Self.wait(for: attempt, timeout: timeout) {
        case .connected(let connection):
            if connections[address] == attempt { established[address] = connection }
            return connection
        case .failed(let error): throw error
        case .timedOut: throw EngineError.unavailable("could not reach \(address) within \(timeout)")
        }
    }

    enum Wait {
        case connected(PeerConnection)
        case failed(any Error)
        case timedOut
    }

    /// Waits for a connection attempt at most `timeout`, leaving the
    /// attempt to go on when the time is up.
    static func wait(for attempt: Task<PeerConnection, any Error>, timeout: Duration) async -> Wait {
        let outcome = OneShot<Wait>()
        return await withCheckedContinuation { continuation in
            outcome.set(continuation)
            let timer = Task {
                try? await Task.sleep(for: timeout)
                outcome.resume(.timedOut)
            }
            Task {
                do { outcome.resume(.connected(try await attempt.value)) } catch { outcome.resume(.failed(error)) }
                timer.cancel()
            }
        }
    }

    private static func open(_ address: String, security: HandshakeConfig, tls: PeerTLS?, logger: Logger, timeout: Duration) async throws -> PeerConnection {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            throw EngineError.unavailable("bad peer address \(address)")
        }
        let handler = ForwardClientHandler()
        let channel = try await PeerTransport.connect(
            host: String(address[..<colon]), port: port, security: security, tls: tls, logger: logger) { handler }
        // A handshake that does not finish in time closes the connection,
        // which fails the wait.
        try await SystemClock().withDeadline(timeout, onTimeout: { channel.close(promise: nil) }) {
            try await handler.waitEstablished()
        }
        return PeerConnection(channel: channel, handler: handler)
    }

    public func closeAll() async {
        for attempt in connections.values {
            if let connection = try? await attempt.value { try? await connection.channel.close() }
        }
        connections.removeAll()
        established.removeAll()
    }
}

/// A continuation resumed once, by whichever comes first.
final class OneShot<Value: Sendable>: Sendable {
    private let state = NIOLockedValueBox<(continuation: CheckedContinuation<Value, Never>?, done: Bool)>((nil, false))

    func set(_ continuation: CheckedContinuation<Value, Never>) {
        state.withLockedValue { $0.continuation = continuation }
    }

    func resume(_ value: Value) {
        let continuation = state.withLockedValue { state -> CheckedContinuation<Value, Never>? in
            guard !state.done, let continuation = state.continuation else { return nil }
            state.done = true
            state.continuation = nil
            return continuation
        }
        continuation?.resume(returning: value)
    }
}

struct PeerConnection: Sendable {
    let channel: any Channel
    let handler: ForwardClientHandler

    var isOpen: Bool { channel.isActive }

    func exchange(_ frame: Frame, correlationID: UInt64, timeout: Duration) async throws -> Frame {
        try await handler.exchange(frame, correlationID: correlationID, on: channel, timeout: timeout)
    }
}

/// The caller's side of one connection: matches replies to calls.
final class ForwardClientHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = Frame

    private struct State {
        var established = false
        var version: UInt8 = 0
        var closed = false
        var establishedWaiters: [CheckedContinuation<Void, any Error>] = []
        var calls: [UInt64: CheckedContinuation<Frame, any Error>] = [:]
    }

    private let state = NIOLockedValueBox(State())

    /// The protocol version the connection speaks (0 before it is established).
    var version: UInt8 { state.withLockedValue { $0.version } }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let established = event as? PeerEstablished {
            let waiters = state.withLockedValue { state in
                state.established = true
                state.version = established.version
                defer { state.establishedWaiters = [] }
                return state.establishedWaiters
            }
            for waiter in waiters { waiter.resume() }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        // Replies start with the correlation id of their call; the caller
        // decodes the rest.
        guard PeerCodec.isReply(frame.type) else { return }
        guard let correlationID = PeerCodec.replyCorrelationID(frame) else {
            context.fireErrorCaught(WireError.malformed("reply without a correlation id"))
            return
        }
        let call = state.withLockedValue { $0.calls.removeValue(forKey: correlationID) }
        call?.resume(returning: frame)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let (waiters, calls) = state.withLockedValue { state in
            state.closed = true
            defer {
                state.establishedWaiters = []
                state.calls = [:]
            }
            return (state.establishedWaiters, Array(state.calls.values))
        }
        let error = EngineError.unavailable("connection to the leader closed")
        for waiter in waiters { waiter.resume(throwing: error) }
        for call in calls { call.resume(throwing: error) }
        context.fireChannelInactive()
    }

    func waitEstablished() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let outcome: Bool? = state.withLockedValue { state in
                if state.established { return true }
                if state.closed { return false }
                state.establishedWaiters.append(continuation)
                return nil
            }
            switch outcome {
            case true?: continuation.resume()
            case false?: continuation.resume(throwing: EngineError.unavailable("connection to the leader closed"))
            case nil: break
            }
        }
    }

    func exchange(_ request: Frame, correlationID id: UInt64, on channel: any Channel, timeout: Duration) async throws -> Frame {
        let abandon: @Sendable () -> Void = {
            // The call is abandoned; a late reply finds no continuation.
            let call = self.state.withLockedValue { $0.calls.removeValue(forKey: id) }
            call?.resume(throwing: EngineError.unavailable("the leader did not answer within \(timeout)"))
        }
        return try await SystemClock().withDeadline(timeout, onTimeout: abandon) {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Frame, any Error>) in
                let closed = self.state.withLockedValue { state -> Bool in
                    if state.closed { return true }
                    state.calls[id] = continuation
                    return false
                }
                if closed {
                    continuation.resume(throwing: EngineError.unavailable("connection to the leader closed"))
                    return
                }
                channel.writeAndFlush(request, promise: nil)
            }
        }
    }
}

extension Duration {
    /// Whole milliseconds (truncated).
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
