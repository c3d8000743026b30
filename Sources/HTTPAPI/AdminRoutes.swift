import Crypto
import Foundation
import Hummingbird
import Node
import OrderDomain

/// Routes that change the cluster; each needs `Authorization: Bearer TOKEN`.
/// Without a configured token they are off (403).
///
/// - `POST /admin/partition {"drop":["api-2",...]}`: cut this node off from
///   those peers, both ways, as a network partition would.
/// - `DELETE /admin/partition`: heal every cut.
public struct AdminRoutes: Sendable {
    let membership: ClusterMembership
    let token: String?

    public init(membership: ClusterMembership, token: String?) {
        self.membership = membership
        self.token = token
    }

    static let bodyBytesMax = 16 * 1024

    public func register(on router: Router<some RequestContext>) {
        router.post("admin/partition") { request, context in
            if let refusal = authorize(request) { return refusal.response() }
            let body: ByteBuffer
            do throws(APIError) {
                body = try await request.collectBody(upTo: Self.bodyBytesMax)
            } catch {
                return error.response()
            }
            let peers: [String]
            switch Self.parseDrop(Data(body.readableBytesView), selfID: membership.nodeID) {
            case .success(let ids): peers = ids
            case .failure(let error): return error.response()
            }
            membership.partition(from: peers)
            return JSONResponse.make(status: .ok, ["partitioned_from": membership.partitionedFrom.sorted()])
        }
        router.delete("admin/partition") { request, _ in
            if let refusal = authorize(request) { return refusal.response() }
            membership.healPartition()
            return JSONResponse.make(status: .ok, ["partitioned_from": [String]()])
        }
    }

    /// `{"drop": ["id", ...]}`: 1 to 64 node ids, none of them this node.
    static func parseDrop(_ data: Data, selfID: String) -> Result<[String], APIError> {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            return .failure(.badRequest("malformed_json", "the body must be a JSON object"))
        }
        guard let drop = object["drop"] as? [Any], !drop.isEmpty, drop.count <= 64 else {
            return .failure(.badRequest("missing_field", "drop must be a list of 1 to 64 node ids"))
        }
        var ids: [String] = []
        for item in drop {
            guard let text = item as? String, let id = ClientID(text) else {
                return .failure(.badRequest("invalid_id", "every node id must be 1-64 characters of A-Z a-z 0-9 . _ -"))
            }
            guard id.rawValue != selfID else {
                return .failure(.badRequest("invalid_id", "a node cannot drop itself (\(selfID))"))
            }
            ids.append(id.rawValue)
        }
        return .success(ids)
    }

    private func authorize(_ request: Request) -> APIError? {
        AdminToken(token).refusal(for: request)
    }
}

/// The check of `Authorization: Bearer TOKEN` every admin route makes.
public struct AdminToken: Sendable {
    let token: String?

    public init(_ token: String?) { self.token = token }

    /// nil when the request may go on; else the error to answer.
    public func refusal(for request: Request) -> APIError? {
        guard let token else {
            return APIError(.forbidden, "admin_disabled", "admin routes are off: start the node with ORDERLY_ADMIN_TOKEN or --admin-token-file")
        }
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else {
            return APIError(.unauthorized, "unauthorized", "admin routes need Authorization: Bearer TOKEN")
        }
        // Constant-time comparison of digests: the answer time says nothing
        // about how much of the token was right.
        let given = SHA256.hash(data: Data(header.dropFirst("Bearer ".count).utf8))
        let expected = SHA256.hash(data: Data(token.utf8))
        guard given == expected else {
            return APIError(.unauthorized, "unauthorized", "wrong admin token")
        }
        return nil
    }
}
