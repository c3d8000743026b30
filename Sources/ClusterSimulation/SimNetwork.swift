import Membership
import NodeRuntime
import Node
import Wire

/// A directed link: what `from` sends to `to`.
struct Link: Hashable, Sendable, Comparable {
    let from: String
    let to: String

    static func < (lhs: Link, rhs: Link) -> Bool { (lhs.from, lhs.to) < (rhs.from, rhs.to) }
}

/// The simulated network between nodes. Every message goes through the
/// peer protocol's codecs (framed, then decoded at the other end), takes a
/// seeded delay, and may be lost, duplicated or reordered (each copy its
/// own delay); a cut link drops what crosses it, in one direction or both.
/// A message to a node that is down is lost; to a paused node it waits in
/// the node's queue. Peer addresses are node ids.
final class SimNetwork: @unchecked Sendable {
    unowned let world: SimWorld
    let trace: Trace
    /// The nodes, by address (node id).
    var nodes: [String: SimNode] = [:]
    /// Links that drop what crosses them.
    var cut: Set<Link> = []
    var lossProbability = 0.0
    var duplicateProbability = 0.0
    /// Usual one-way delay, in ns; a message is sometimes much slower
    /// (`slowProbability`, up to `slowDelayNsMax`), which reorders it.
    var delayNs: ClosedRange<Int64> = 50_000...400_000
    var slowProbability = 0.01
    var slowDelayNsMax: Int64 = 30_000_000
    /// How many messages go through the peer codecs, framed at one end and
    /// decoded at the other, as on TCP (the rest are handed over as values:
    /// the codecs cost a quarter of a run, and their own tests cover them).
    var encodeProbability = 0.25
    private let draws: RandomStream
    private(set) var sent = 0
    private(set) var dropped = 0

    init(world: SimWorld, trace: Trace) {
        self.world = world
        self.trace = trace
        draws = world.stream("network")
    }

    /// Whether the next message goes through the codecs.
    var encodes: Bool { draws.chance(encodeProbability) }

    private func delay() -> Int64 {
        if draws.chance(slowProbability) { return draws.uniform(delayNs.upperBound...max(delayNs.upperBound, slowDelayNsMax)) }
        return draws.uniform(delayNs)
    }

    /// Carries one message from `from` to the node at `to`: `deliver` runs
    /// on the driver at arrival, with the life of the receiving node then.
    func transmit(from: String, to: String, what: @autoclosure () -> String, _ deliver: @escaping (NodeLife) -> Void) {
        sent += 1
        let link = Link(from: from, to: to)
        if cut.contains(link) || draws.chance(lossProbability) {
            dropped += 1
            trace.record(world.nowNs, hashed: false, "net \(from)->\(to) lost \(what())")
            return
        }
        let copies = draws.chance(duplicateProbability) ? 2 : 1
        for _ in 0..<copies {
            world.after(delay()) { [self] in
                // A cut made while the message was on its way drops it too.
                guard !cut.contains(link), let life = nodes[to]?.life, life.executor.state != .dead else {
                    dropped += 1
                    return
                }
                deliver(life)
            }
        }
    }
}

/// One node life's view of the network: what its `OrderlyNode` sends
/// through (`PeerNetwork`), with its own partition switch.
final class SimPeerNetwork: PeerNetwork, @unchecked Sendable {
    let network: SimNetwork
    let nodeID: String
    unowned let life: NodeLife
    let filter = PeerFilter()
    private var nextCorrelationID: UInt64 = 1

    init(network: SimNetwork, nodeID: String, life: NodeLife) {
        self.network = network
        self.nodeID = nodeID
        self.life = life
    }

    func send(_ message: PeerMessage, to address: String, timeout: Duration) async {
        guard !filter.blocks(address: address) && !filter.blocks(id: address) else { return }
        let frame = network.encodes ? PeerCodec.encode(message) : nil
        let from = nodeID
        network.transmit(from: from, to: address, what: Self.describe(message)) { [network] receiver in
            guard !receiver.network.filter.blocks(id: from) else { return }
            let delivered: PeerMessage
            if let frame {
                guard case .message(let decoded)? = try? PeerCodec.decode(frame) else {
                    network.trace.record(network.world.nowNs, "net \(from)->\(address) undecodable message")
                    return
                }
                delivered = decoded
            } else {
                delivered = message
            }
            receiver.executor.spawn { receiver.inbox?.receive(delivered, from: from) }
        }
    }

    func call(_ request: PeerRequest, to address: String, timeout: Duration) async throws -> PeerReply {
        guard !filter.blocks(address: address) && !filter.blocks(id: address) else {
            throw EngineError.unavailable("\(address) is cut off by the partition switch")
        }
        let correlationID = nextCorrelationID
        nextCorrelationID += 1
        let call = PendingCall()
        let caller = life
        let network = self.network
        let from = nodeID
        let frame = network.encodes ? PeerCodec.encode(request, correlationID: correlationID) : nil
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<PeerReply, any Error>) in
            call.continuation = continuation
            call.timer = caller.clock.schedule(after: timeout) {
                call.finish(.failure(EngineError.unavailable("\(address) did not answer within \(timeout)")))
            }
            network.transmit(from: from, to: address, what: Self.describe(request)) { receiver in
                guard !receiver.network.filter.blocks(id: from) else { return }
                var decodedRequest = request
                if let frame {
                    guard case .request(_, let decoded)? = try? PeerCodec.decode(frame) else {
                        network.trace.record(network.world.nowNs, "net \(from)->\(address) undecodable request")
                        return
                    }
                    decodedRequest = decoded
                }
                let delivered = decodedRequest
                receiver.executor.spawn {
                    let reply = await receiver.answer(delivered, from: from)
                    let replyFrame = frame != nil ? PeerCodec.encode(reply, correlationID: correlationID) : nil
                    network.transmit(from: address, to: from, what: "reply") { back in
                        // The caller's process is gone, or it cut the
                        // replier off meanwhile: the reply is dropped.
                        guard back === caller, !caller.network.filter.blocks(address: address) else { return }
                        var answer = reply
                        if let replyFrame {
                            guard case .reply(_, let decoded)? = try? PeerCodec.decode(replyFrame) else {
                                call.finish(.failure(EngineError.unavailable("undecodable reply from \(address)")))
                                return
                            }
                            answer = decoded
                        }
                        caller.executor.fire { call.finish(.success(answer)) }
                    }
                }
            }
        }
    }

    func closeAll() async {}

    static func describe(_ message: PeerMessage) -> String {
        switch message {
        case .gossip: return "gossip"
        case .vouch: return "vouch"
        }
    }

    static func describe(_ request: PeerRequest) -> String {
        switch request {
        case .forward(let forward): return "forward \(forward.orderID)"
        case .fetch(let fetch):
            switch fetch.scope {
            case .log(let origin, let from, _, _, _, _, _): return "fetch \(origin)@\(from)"
            case .orders(let orders): return "fetch order \(orders.map(\.rawValue).joined(separator: ","))"
            }
        case .view: return "view"
        case .grant(let grant): return "grant \(grant.term) for \(grant.group)"
        case .recovery(let recovery): return "recovery of \(recovery.node)"
        case .store(let store): return "store \(store.events.count) events of \(Set(store.events.map(\.orderID)).sorted().joined(separator: ","))"
        }
    }
}

/// A request waiting for its reply or its deadline, whichever comes first.
private final class PendingCall: @unchecked Sendable {
    var continuation: CheckedContinuation<PeerReply, any Error>?
    var timer: ScheduledTimer?

    func finish(_ result: Result<PeerReply, any Error>) {
        guard let continuation else { return }
        self.continuation = nil
        timer?.cancel()
        continuation.resume(with: result)
    }
}
