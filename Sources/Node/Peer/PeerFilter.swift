import Synchronization

/// A switch that cuts this node off from named peers, both ways, as a
/// network partition would: nothing is sent to them and what they send is
/// dropped. It lets tests and operators make a partition without root.
public final class PeerFilter: Sendable {
    private let blocked = Mutex<(ids: Set<String>, addresses: Set<String>)>(([], []))

    public init() {}

    /// Cuts off these peers (node ids with their peer addresses).
    public func block(_ peers: [(id: String, address: String)]) {
        blocked.withLock {
            for peer in peers {
                $0.ids.insert(peer.id)
                if !peer.address.isEmpty { $0.addresses.insert(peer.address) }
            }
        }
    }

    /// Heals every cut.
    public func clear() {
        blocked.withLock { $0 = ([], []) }
    }

    public var blockedIDs: Set<String> { blocked.withLock { $0.ids } }

    public func blocks(id: String) -> Bool { blocked.withLock { $0.ids.contains(id) } }

    public func blocks(address: String) -> Bool { blocked.withLock { $0.addresses.contains(address) } }
}
