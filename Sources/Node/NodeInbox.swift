import Logging
import Membership
import OrderDomain
import Wire

/// What a node serves its authenticated peers: forwarded commands, run on
/// the local engine only where this node leads the order in its own view;
/// fetches of its logs; gossip and followers' views.
public struct NodeInbox: PeerInbox {
    let engine: OrderEngine
    let membership: ClusterMembership?
    let replicator: Replicator?
    let logger: Logger

    /// `membership` nil: a node on its own, which leads every order.
    public init(engine: OrderEngine, membership: ClusterMembership? = nil, replicator: Replicator? = nil, logger: Logger) {
        self.engine = engine
        self.membership = membership
        self.replicator = replicator
        self.logger = logger
    }

    public func receive(_ message: PeerMessage, from sender: String) {
        switch message {
        case .gossip(let digest):
            membership?.receive(digest, from: sender.isEmpty ? nil : sender)
        case .vouch(let follower, let view):
            // Only a peer speaks for itself.
            guard sender.isEmpty || sender == follower else {
                logger.warning("a peer sent a view in another's name; dropped", metadata: ["sender": "\(sender)", "follower": "\(follower)"])
                return
            }
            replicator?.noteView(follower, view)
        }
    }

    public func answer(_ request: PeerRequest, from sender: String) async -> PeerReply {
        switch request {
        case .forward(let forward):
            if let reason = membership?.outOfService { return .forward(.unavailable(reason)) }
            // A sender with a stale view must not make two nodes lead one
            // order: the call runs only where this node would send it itself.
            switch membership?.route(forward.orderID) ?? .local {
            case .local:
                return .forward(await Self.run(forward, on: engine))
            case .remote(let leader, _):
                return .forward(.unavailable("\(Self.notLeadingPrefix) \(forward.orderID) (\(leader) does in its view); retry"))
            case .unavailable(let reason):
                return .forward(.unavailable(reason))
            }
        case .fetch(let fetch):
            guard let replicator else {
                return .fetch(FetchReply(events: [], throughOffset: 0, holderLastOffset: 0, refusal: "this node does not replicate"))
            }
            return .fetch(await replicator.serve(fetch))
        case .view:
            return .view(membership?.members ?? [])
        case .grant(let grant):
            guard let replicator else {
                return .grant(GrantReply(granted: false, promise: .none, reason: "this node does not replicate"))
            }
            if let reason = membership?.outOfService { return request.refused(reason) }
            return .grant(await replicator.grant(grant, from: sender))
        case .recovery(let recovery):
            guard let replicator else { return request.refused("this node does not replicate") }
            if let reason = membership?.outOfService { return request.refused(reason) }
            return .recovery(await replicator.answerRecovery(recovery))
        case .store(let store):
            guard let replicator else { return request.refused("this node does not replicate") }
            if let reason = membership?.outOfService { return request.refused(reason) }
            return .store(await replicator.store(store.events))
        }
    }

    /// How a refusal to run a forwarded call that this node does not lead
    /// begins (the sender routes it again, see `Dispatcher`).
    static let notLeadingPrefix = "this node does not lead order"

    /// Runs a call on the local engine and says how it went, as the peer
    /// that forwarded it would have heard it.
    static func run(_ request: ForwardRequest, on engine: OrderEngine) async -> ForwardReply {
        do {
            switch request.call {
            case .read:
                return .done(outcome: nil, state: try await engine.state(of: request.orderID))
            case .command(let command):
                switch try await engine.execute(request.orderID, command) {
                case .success(let result): return .done(outcome: result.outcome, state: result.state)
                case .failure(let error): return .refused(error)
                }
            }
        } catch {
            return .unavailable("\(error)")
        }
    }
}
