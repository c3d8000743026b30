import OrderDomain
import Wire

/// Every client call of a run: what was asked of which node, when, and
/// what came back. The checker's input, with the nodes' final state.
final class History: @unchecked Sendable {
    struct Operation: Sendable {
        let id: Int
        let client: Int
        let order: ClientID
        let node: String
        let call: ForwardedCall
        let invokeNs: Int64
        var completeNs: Int64?
        var answer: ClientAnswer?
        /// Available mode, an acknowledged command: the nodes whose log
        /// showed its effect when the answer came (see `Checker`).
        var holders: Set<String>?

        /// Known to have happened (or not) as answered.
        var isDefinite: Bool {
            switch answer {
            case .ok?, .refused?: return true
            case .unknown?, nil: return false
            }
        }

        var acknowledged: Bool {
            if case .ok? = answer { return true }
            return false
        }
    }

    private(set) var operations: [Operation] = []
    /// Orders whose place command some client sent.
    private(set) var placeSent: Set<ClientID> = []

    func invoke(client: Int, order: ClientID, node: String, call: ForwardedCall, at nowNs: Int64) -> Int {
        let id = operations.count
        operations.append(Operation(id: id, client: client, order: order, node: node, call: call, invokeNs: nowNs))
        if case .command(.place) = call { placeSent.insert(order) }
        return id
    }

    func complete(_ id: Int, _ answer: ClientAnswer, at nowNs: Int64, holders: Set<String>? = nil) {
        operations[id].completeNs = nowNs
        operations[id].answer = answer
        operations[id].holders = holders
    }

    var orders: [ClientID] {
        var seen: Set<ClientID> = []
        var ordered: [ClientID] = []
        for operation in operations where seen.insert(operation.order).inserted { ordered.append(operation.order) }
        return ordered
    }

    func operations(of order: ClientID) -> [Operation] {
        operations.filter { $0.order == order }
    }
}

extension ForwardedCall {
    var summary: String {
        switch self {
        case .read: return "read"
        case .command(let command):
            switch command {
            case .place(_, let lines): return "place \(lines.map { "\($0.sku)x\($0.qty)" }.joined(separator: ","))"
            case .pay(let id, let amount): return "pay \(id) \(amount)"
            case .cancel: return "cancel"
            case .ship(let id): return "ship \(id)"
            case .expireHeldPayments: return "expire"
            }
        }
    }
}

extension ClientAnswer {
    var summary: String {
        switch self {
        case .ok(let outcome, let state):
            let outcomeText = outcome.map { "\($0)" } ?? "read"
            return "ok \(outcomeText) \(state.status?.rawValue ?? "absent") v\(state.version) paid \(state.paidCents)/\(state.totalCents)"
        case .refused(let error):
            switch error {
            case .invalid(let code, _), .conflict(let code, _): return "refused \(code)"
            case .notFound: return "refused not_found"
            }
        case .unknown(let reason): return "unknown (\(reason.prefix(120)))"
        }
    }
}
