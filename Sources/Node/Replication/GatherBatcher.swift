import LogStorage
import NodeRuntime
import OrderDomain
import Synchronization
import Wire

/// A new leader asks each replica of an order what it holds of it before it
/// decides (`Replicator.gather`). Under load a leader activates many orders
/// at once, and a fetch per order and replica, each in a child task of its
/// own, made that the largest cost of a command: frames, a writer barrier
/// on each replica, and half a dozen thread hand-offs per order. Here the
/// orders asked of one replica while a fetch to it is in flight wait and go
/// together in the next, as group commit batches appends: the first order
/// of an idle replica goes at once and nothing waits for a timer. One task
/// per busy replica sends the batches; a caller waits once, for all its
/// replicas. Each order's answer is exactly what a fetch of it alone would
/// have said (its events, and the term the replica granted for its
/// preference list).
final class GatherBatcher: Sendable {
    /// What one replica said of one order.
    struct Answer: Sendable {
        let events: [EventRecord]
        let promise: Term?
    }

    /// One caller's gather: the answers of its replicas as they come, and
    /// the caller, resumed when the last one is in.
    private final class Collector: Sendable {
        private struct State {
            var remaining: Int
            var answers: [String: Answer] = [:]
            var continuation: CheckedContinuation<[String: Answer], Never>?
        }
        private let state: Mutex<State>

        init(replicas: Int, continuation: CheckedContinuation<[String: Answer], Never>) {
            state = Mutex(State(remaining: replicas, continuation: continuation))
        }

        func deliver(_ answer: Answer?, from replica: String) {
            let done = state.withLock { state -> (CheckedContinuation<[String: Answer], Never>, [String: Answer])? in
                if let answer { state.answers[replica] = answer }
                state.remaining -= 1
                guard state.remaining == 0, let continuation = state.continuation else { return nil }
                state.continuation = nil
                return (continuation, state.answers)
            }
            if let (continuation, answers) = done { continuation.resume(returning: answers) }
        }
    }

    private struct Asked {
        let orderID: ClientID
        let replica: String
        let collector: Collector
    }

    private let network: any PeerNetwork
    private let spawner: any TaskSpawner
    private let timeout: Duration
    private let batchMax: Int
    /// Per replica address with a sender running: the orders waiting for
    /// its next fetch (no entry: no sender, the replica is idle).
    private let lanes = Mutex<[String: [Asked]]>([:])

    init(network: any PeerNetwork, spawner: any TaskSpawner, timeout: Duration, batchMax: Int = ReplicationCodec.ordersPerGatherMax) {
        self.network = network
        self.spawner = spawner
        self.timeout = timeout
        self.batchMax = max(1, batchMax)
    }

    /// What each of `replicas` holds of `orderID`, asked by the node
    /// `follower` (this one): by replica id, only those that answered.
    func gather(_ orderID: ClientID, from replicas: [(id: String, address: String)], follower: String) async -> [String: Answer] {
        guard !replicas.isEmpty else { return [:] }
        return await withCheckedContinuation { continuation in
            let collector = Collector(replicas: replicas.count, continuation: continuation)
            for (id, address) in replicas {
                let asked = Asked(orderID: orderID, replica: id, collector: collector)
                let idle = lanes.withLock { lanes -> Bool in
                    if lanes[address] != nil {
                        lanes[address]!.append(asked)
                        return false
                    }
                    lanes[address] = []
                    return true
                }
                if idle { spawner.spawn { await self.send([asked], to: address, follower: follower) } }
            }
        }
    }

    /// Sends `batch` to the replica, then whatever was asked of it
    /// meanwhile, until nothing waits.
    private func send(_ first: [Asked], to address: String, follower: String) async {
        var batch = first
        while !batch.isEmpty {
            let answers = await fetch(batch.map(\.orderID), from: address, follower: follower)
            for (index, asked) in batch.enumerated() { asked.collector.deliver(answers[index], from: asked.replica) }
            batch = lanes.withLock { lanes -> [Asked] in
                guard let queued = lanes[address], !queued.isEmpty else {
                    lanes[address] = nil
                    return []
                }
                lanes[address] = Array(queued.dropFirst(batchMax))
                return Array(queued.prefix(batchMax))
            }
        }
    }

    /// Orders waiting for the next fetch to the replica at `address`.
    func waiting(at address: String) -> Int {
        lanes.withLock { $0[address]?.count ?? 0 }
    }

    /// One fetch of `orderIDs`; an answer per order, in their order (nil
    /// for each when the replica did not answer or refused).
    private func fetch(_ orderIDs: [ClientID], from address: String, follower: String) async -> [Answer?] {
        guard let reply = try? await network.fetch(address, follower: follower, .orders(orderIDs), timeout: timeout),
            reply.refusal == nil, reply.promises.count == orderIDs.count
        else { return Array(repeating: nil, count: orderIDs.count) }
        var byOrder: [String: [EventRecord]] = [:]
        for event in reply.events { byOrder[event.orderID, default: []].append(event) }
        return orderIDs.enumerated().map { index, orderID in
            Answer(events: byOrder[orderID.rawValue] ?? [], promise: reply.promises[index])
        }
    }
}
