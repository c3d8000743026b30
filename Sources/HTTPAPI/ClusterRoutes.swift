import EventLog
import Hummingbird
import Membership
import Node
import Wire
import OrderDomain

/// `GET /cluster[?order=ID]`: this node's view, the ring, and where an order lives.
public struct ClusterRoutes: Sendable {
    let membership: ClusterMembership
    let replicator: Replicator?
    /// The node's peer protocol versions and what its peers showed.
    let protocols: HandshakeConfig?

    public init(membership: ClusterMembership, replicator: Replicator? = nil, protocols: HandshakeConfig? = nil) {
        self.membership = membership
        self.replicator = replicator
        self.protocols = protocols
    }

    struct ProtocolView: Encodable {
        /// The newest version every member of the ring speaks.
        let cluster: Int
        /// The oldest and newest versions this node speaks.
        let speaks: [Int]
        /// Per peer this node has shaken hands with since it started: the
        /// version of the latest connection and the newest it speaks.
        let peers: [String: PeerProtocolView]
    }

    struct PeerProtocolView: Encodable {
        let negotiated: Int
        let newest: Int
    }

    struct MemberView: Encodable {
        let id, http, peer, status: String
        let incarnation: UInt64
    }

    struct RingView: Encodable {
        let nodes: [String]
        let virtual_nodes: Int
        let shares: [String: Double]
    }

    struct FollowerView: Encodable {
        let node: String
        let position: Int64
        let lag_events: Int64
        let lag_ms: Int64
    }

    struct OriginView: Encodable {
        let origin: String
        let last_offset: Int64
        /// Who copies this origin's log, as far as this node knows: for its
        /// own log the followers' acknowledged positions; for a peer's log
        /// this node's own copy.
        let followers: [FollowerView]
    }

    struct ReplicationView: Encodable {
        let factor: Int
        let acks: String?
        let partition_mode: String?
        let origins: [OriginView]
        let partitioned_from: [String]
        /// This node holds every event of the orders the current ring gives
        /// it (false while it backfills after a ring change).
        let backfilled: Bool
        /// Present while this node's log recovers from its peers' copies
        /// (after it started): why it leads nothing and grants no term yet.
        let recovering: String?
    }

    struct OrderPlacementView: Encodable {
        let id: String
        let preference_list: [String]
        let leader: String?

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(preference_list, forKey: .preference_list)
            try container.encode(leader, forKey: .leader)  // null when no live leader
        }

        enum CodingKeys: String, CodingKey { case id, preference_list, leader }
    }

    struct ClusterView: Encodable {
        let node: String
        /// Heard from the cluster it joins.
        let joined: Bool
        /// Every live peer sees this node alive: it leads its orders.
        let leading: Bool
        /// Per peer whose lease to this node holds: the ms it has left (a
        /// leader decides only while enough of its replicas' leases hold).
        let leases: [String: Int64]
        /// Members whose orders this node lets others lead (left, or dead and
        /// silent here for the failure detector's dead-after).
        let released: [String]
        let members: [MemberView]
        let ring: RingView
        let replication: ReplicationView
        let `protocol`: ProtocolView?
        let order: OrderPlacementView?
    }

    public func register(on router: Router<some RequestContext>) {
        router.get("cluster") { request, _ in
            var order: OrderPlacementView?
            if let raw = request.uri.queryParameters.get("order") {
                guard let id = ClientID(String(raw)) else {
                    return APIError.badRequest("invalid_id", "order must be 1-64 characters of A-Z a-z 0-9 . _ -").response()
                }
                let placement = membership.placement(of: id)
                order = OrderPlacementView(id: id.rawValue, preference_list: placement.preferenceList, leader: placement.leader)
            }
            let ring = membership.currentRing
            let view = ClusterView(
                node: membership.nodeID,
                joined: membership.joined,
                leading: membership.settled,
                leases: membership.leasesRemainingMs,
                released: membership.released.sorted(),
                members: membership.members.map {
                    MemberView(id: $0.id, http: $0.http, peer: $0.peer, status: $0.status.rawValue, incarnation: $0.incarnation)
                },
                ring: RingView(nodes: ring.nodes, virtual_nodes: ring.virtualNodesPerWeight, shares: ring.shares()),
                replication: await replicationView(),
                protocol: protocols.map { config in
                    ProtocolView(
                        cluster: Int(config.peers.clusterVersion(own: config.versions, members: ring.nodes.filter { $0 != membership.nodeID })),
                        speaks: [Int(config.versions.lowerBound), Int(config.versions.upperBound)],
                        peers: config.peers.all.mapValues { PeerProtocolView(negotiated: Int($0.negotiated), newest: Int($0.newest)) })
                },
                order: order)
            return JSONResponse.make(status: .ok, view)
        }
    }

    private func replicationView() async -> ReplicationView {
        var origins: [OriginView] = []
        if let replicator {
            let own = replicator.ownLastOffset
            origins.append(OriginView(
                origin: membership.nodeID, last_offset: own,
                followers: await replicator.followers().map {
                    FollowerView(node: $0.follower, position: $0.position, lag_events: $0.lagEvents, lag_ms: $0.lagMs)
                }))
            let now = WallClock.nowMs()
            for (origin, copy) in replicator.copies.sorted(by: { $0.key < $1.key }) {
                origins.append(OriginView(
                    origin: origin, last_offset: copy.holderLastOffset,
                    followers: [FollowerView(
                        node: membership.nodeID, position: copy.through, lag_events: max(0, copy.holderLastOffset - copy.through),
                        lag_ms: copy.through >= copy.holderLastOffset ? 0 : max(0, now - copy.updatedMs))]))
            }
        }
        return ReplicationView(
            factor: membership.replicationFactor, acks: replicator?.config.acks.rawValue,
            partition_mode: replicator?.config.partitionMode.rawValue, origins: origins,
            partitioned_from: membership.partitionedFrom.sorted(),
            backfilled: replicator?.backfilled(ring: membership.ringMembers) ?? true, recovering: replicator?.recovering)
    }
}
