import Logging
import Membership
import Metrics
import Wire
import NIOCore
import NodeRuntime
import OrderDomain

/// Accepts any order command and runs it on the order's leader: here, or
/// forwarded over the peer protocol with a deadline. A leader that cannot
/// be reached in time gives `EngineError.unavailable` (HTTP 503). A node
/// that this one's view names as leader but whose own view names another
/// (views differ for a gossip round after a node joins, leaves or dies)
/// refuses the call without running it; the call is then routed again, a
/// few milliseconds later, until the forward timeout has passed.
public final class Dispatcher: OrderService {
    private let engine: OrderEngine
    private let network: any PeerNetwork
    private let route: @Sendable (ClientID) -> Route
    private let forwardTimeout: Duration
    private let clock: any NodeClock
    private let forwarded = Counter(label: "orderly_forwarded_commands_total")
    private let forwardFailures = Counter(label: "orderly_forward_failures_total")

    public convenience init(engine: OrderEngine, security: HandshakeConfig, forwardTimeout: Duration = .seconds(2), logger: Logger, route: @escaping @Sendable (ClientID) -> Route) {
        self.init(engine: engine, network: PeerClients(security: security, logger: logger), forwardTimeout: forwardTimeout, route: route)
    }

    public init(
        engine: OrderEngine, network: any PeerNetwork, forwardTimeout: Duration = .seconds(2), clock: any NodeClock = SystemClock(),
        route: @escaping @Sendable (ClientID) -> Route
    ) {
        self.engine = engine
        self.network = network
        self.forwardTimeout = forwardTimeout
        self.clock = clock
        self.route = route
    }

    public var catalog: Catalog { engine.catalog }

    public func execute(_ orderID: ClientID, _ command: OrderCommand) async throws -> Result<CommandResult, DomainError> {
        switch try await call(orderID, .command(command)) {
        case .done(let outcome, let state): return .success(CommandResult(outcome: outcome ?? .replayed, state: state))
        case .refused(let error): return .failure(error)
        case .unavailable(let message): throw EngineError.unavailable(message)
        }
    }

    public func state(of orderID: ClientID) async throws -> OrderState {
        switch try await call(orderID, .read) {
        case .done(_, let state): return state
        case .refused(let error): throw EngineError.unavailable("\(error)")
        case .unavailable(let message): throw EngineError.unavailable(message)
        }
    }

    /// The peer listener's handler: hands what peers send to `inbox`
    /// (forwarded calls, fetches, gossip), dropping what comes from peers
    /// `filter` cuts off.
    public static func serverHandler(_ inbox: any PeerInbox, filter: PeerFilter? = nil, logger: Logger) -> any ChannelHandler {
        PeerServerHandler(inbox: inbox, filter: filter, logger: logger)
    }

    private func call(_ orderID: ClientID, _ call: ForwardedCall) async throws -> ForwardReply {
        let startMs = clock.monotonicMs
        var pause = Duration.milliseconds(10)
        while true {
            let reply = try await callOnce(orderID, call)
            // Only a refusal that ran nothing is routed again.
            guard case .unavailable(let message) = reply, message.hasPrefix(NodeInbox.notLeadingPrefix),
                clock.monotonicMs - startMs + pause.wholeMilliseconds < forwardTimeout.wholeMilliseconds
            else { return reply }
            try await clock.sleep(for: pause)
            pause = min(pause * 2, .milliseconds(200))
        }
    }

    private func callOnce(_ orderID: ClientID, _ call: ForwardedCall) async throws -> ForwardReply {
        switch route(orderID) {
        case .local:
            return await NodeInbox.run(ForwardRequest(timeoutMs: 0, orderID: orderID, call: call), on: engine)
        case .unavailable(let reason):
            throw EngineError.unavailable("order \(orderID) has no live leader: \(reason)")
        case .remote(let nodeID, let peer):
            forwarded.increment()
            do {
                return try await network.forward(peer, orderID: orderID, call, timeout: forwardTimeout)
            } catch {
                forwardFailures.increment()
                throw EngineError.unavailable("leader \(nodeID) at \(peer) could not be reached: \(error)")
            }
        }
    }

    public func shutdown() async {
        await network.closeAll()
    }
}
