import Hummingbird
import Membership
import Node
import OrderDomain

/// `GET /cluster[?order=ID]`: this node's view, the ring, and where an order lives.
public struct ClusterRoutes: Sendable {
    let membership: ClusterMembership

    public init(membership: ClusterMembership) {
        self.membership = membership
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

    struct ReplicationView: Encodable {
        let factor: Int
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
        let members: [MemberView]
        let ring: RingView
        let replication: ReplicationView
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
                members: membership.members.map {
                    MemberView(id: $0.id, http: $0.http, peer: $0.peer, status: $0.status.rawValue, incarnation: $0.incarnation)
                },
                ring: RingView(nodes: ring.nodes, virtual_nodes: ring.virtualNodesPerWeight, shares: ring.shares()),
                replication: ReplicationView(factor: membership.replicationFactor),
                order: order)
            return JSONResponse.make(status: .ok, view)
        }
    }
}
