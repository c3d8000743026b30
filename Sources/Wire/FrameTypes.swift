/// Every frame type of the peer protocol, in one place. Types below 16 are
/// the handshake's; from 16 on, the application's.

/// The handshake (see `Handshake`).
public enum HandshakeFrame: UInt8, Sendable {
    case hello = 1
    case challenge = 2
    case proof = 3
    case welcome = 4
    case reject = 5
}

/// Frame types of command forwarding (application range, ≥ 16).
public enum ForwardFrame: UInt8 {
    case request = 16
    case reply = 17
}

/// Frame types of log shipping (application range).
public enum ReplicationFrame: UInt8 {
    /// Follower to holder: "send me events". A fetch of an origin's log from
    /// offset N also acknowledges that the follower holds everything before N.
    case fetch = 19
    /// Holder to follower: the events asked for.
    case batch = 20
    /// Follower to origin, when its view changes: the nodes it lets lead
    /// (see `VouchView`). No reply.
    case vouch = 23
    /// A node asks a replica to grant it a leadership term.
    case grant = 24
    /// The replica's answer.
    case grantReply = 25
    /// A node starting on a log that may have gone back asks a peer what it
    /// holds of the node (see `RecoveryRequest`).
    case recovery = 26
    /// The peer's answer.
    case recoveryReply = 27
    /// A new leader gives a replica copies of an order's events it lacks,
    /// so that every event the leader will answer from is on a majority.
    case store = 28
    /// How many of them the replica stored (durably), or why none.
    case storeReply = 29
}

/// Frame types of membership (application range).
public enum ClusterFrame: UInt8 {
    case gossip = 18
    /// A role outside the ring (stats, warehouse, balancer) asks for this
    /// node's view: payload = correlation id.
    case viewRequest = 21
    /// The view: correlation id, then a gossip digest.
    case viewReply = 22
}
