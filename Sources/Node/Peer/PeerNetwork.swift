import Membership
import OrderDomain
import Replication
import Wire

/// How a node reaches its peers: typed messages to a peer address. A real
/// node frames them over TCP (`PeerClients`, SwiftNIO); a simulated one
/// hands them to the simulator's network, which delays, drops, duplicates
/// and cuts them as the seed says. In the simulation a node's peer address
/// is its node id.
public protocol PeerNetwork: Sendable {
    /// This node's partition switch (`POST /admin/partition`): peers it cuts
    /// off get nothing from it and what they send is dropped.
    var filter: PeerFilter { get }
    /// Sends a message that expects no reply. Failures are dropped: the
    /// protocols that send these repeat them.
    func send(_ message: PeerMessage, to address: String, timeout: Duration) async
    /// Sends a request and waits for its reply, at most `timeout` in all.
    /// Throws `EngineError.unavailable` when the peer cannot be reached or
    /// does not answer in time.
    func call(_ request: PeerRequest, to address: String, timeout: Duration) async throws -> PeerReply
    /// Closes what is open (shutdown).
    func closeAll() async
}

/// What a node serves its peers: the receiving side of `PeerNetwork`.
public protocol PeerInbox: Sendable {
    /// A message from the authenticated peer `sender`.
    func receive(_ message: PeerMessage, from sender: String)
    /// Answers a request from the authenticated peer `sender`.
    func answer(_ request: PeerRequest, from sender: String) async -> PeerReply
}

extension PeerNetwork {
    /// Asks the node at `address` for events (log shipping, gathering an
    /// order); at most `timeout` in all.
    public func fetch(_ address: String, follower: String, _ scope: FetchScope, view: VouchView? = nil, timeout: Duration) async throws -> FetchReply {
        guard case .fetch(let reply) = try await call(.fetch(FetchRequest(follower: follower, scope: scope, view: view)), to: address, timeout: timeout)
        else { throw EngineError.unavailable("\(address) answered a fetch with another kind of reply") }
        return reply
    }

    /// Runs a forwarded call on the order's leader at `address`.
    func forward(_ address: String, orderID: ClientID, _ call: ForwardedCall, timeout: Duration) async throws -> ForwardReply {
        let request = ForwardRequest(timeoutMs: UInt32(clamping: max(0, timeout.milliseconds)), orderID: orderID, call: call)
        guard case .forward(let reply) = try await self.call(.forward(request), to: address, timeout: timeout)
        else { throw EngineError.unavailable("\(address) answered a command with another kind of reply") }
        return reply
    }

    /// Asks the node at `address` for its view of the cluster's members.
    public func view(_ address: String, timeout: Duration) async throws -> [Member] {
        guard case .view(let members) = try await call(.view, to: address, timeout: timeout)
        else { throw EngineError.unavailable("\(address) answered a view request with another kind of reply") }
        return members
    }
}
