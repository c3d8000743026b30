import HashRing
import Logging
import Membership
import NIOCore
import OrderDomain
import ServiceLifecycle
import Synchronization
import Wire

/// The membership shell: owns the pure core, runs its ticks, carries its
/// gossip over the peer protocol, and derives the ring from the view.
/// Orders route to the first member of their preference list; while that
/// member is not alive the order is unavailable (replication will let the
/// next replica lead).
public final class ClusterMembership: Service, Sendable {
    public let replicationFactor: Int
    private let core: Mutex<MembershipCore>
    /// The ring and each member's status and address, rebuilt when a
    /// member's status changes, so routing a command reads a snapshot.
    private let routing = Mutex<(ring: HashRing, members: [String: Member])>((HashRing(nodes: [:]), [:]))
    private let clients: PeerClients
    private let logger: Logger
    private let memberGauge = Mutex<[String: MemberStatus]>([:])

    public init(self member: Member, config: MembershipConfig, replicationFactor: Int, clients: PeerClients, logger: Logger) {
        self.replicationFactor = replicationFactor
        self.selfID = member.id
        self.core = Mutex(MembershipCore(selfMember: member, config: config, nowMs: MonotonicMs.now()))
        self.clients = clients
        self.logger = logger
        rebuildRing()
    }

    public var nodeID: String { selfID }
    private let selfID: String
    public var members: [Member] { core.withLock { $0.view } }
    public var currentRing: HashRing { routing.withLock { $0.ring } }

    public func advertise(http: String) {
        core.withLock { $0.advertise(http: http) }
    }

    /// Where an order's commands go, from the current view.
    public func route(_ orderID: ClientID) -> Route {
        let (ring, members) = routing.withLock { $0 }
        guard let leader = ring.owner(of: orderID.rawValue), let member = members[leader] else {
            return .unavailable("the ring is empty")
        }
        if leader == selfID { return .local }
        guard member.status == .alive else {
            return .unavailable("its leader \(leader) is \(member.status.rawValue)")
        }
        return .remote(nodeID: leader, peer: member.peer)
    }

    /// The preference list and the member that leads the order now.
    public func placement(of orderID: ClientID) -> (preferenceList: [String], leader: String?) {
        let (ring, members) = routing.withLock { $0 }
        let list = ring.preferenceList(for: orderID.rawValue, count: replicationFactor)
        return (list, list.first.flatMap { members[$0]?.status == .alive ? $0 : nil })
    }

    /// Gossip from a peer.
    public func receive(_ digest: GossipDigest) {
        let directives = core.withLock { $0.receive(digest, nowMs: MonotonicMs.now()) }
        handle(directives)
    }

    public func run() async throws {
        let interval = core.withLock { $0.config.heartbeatIntervalMs }
        var random = SystemRandomNumberGenerator()
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let directives = core.withLock { $0.tick(nowMs: MonotonicMs.now(), random: &random) }
            handle(directives)
            try? await Task.sleep(for: .milliseconds(interval))
        }
        // Announce the departure, so peers mark us left rather than dead.
        let farewells = core.withLock { $0.leave() }
        await withDiscardingTaskGroup { group in
            for case .sendGossip(let peer, let digest) in farewells {
                group.addTask { await self.clients.post(peer, Self.frame(digest), timeout: .milliseconds(500)) }
            }
        }
        logger.info("left the cluster")
    }

    private func handle(_ directives: [MembershipDirective]) {
        var ringChanged = false
        for directive in directives {
            switch directive {
            case .sendGossip(let peer, let digest):
                let frame = Self.frame(digest)
                let clients = self.clients
                Task { await clients.post(peer, frame, timeout: .seconds(1)) }
            case .memberChanged(let member, let previous):
                ringChanged = true
                logger.info("member \(member.status.rawValue)", metadata: [
                    "member": "\(member.id)", "previous": "\(previous?.rawValue ?? "unknown")", "incarnation": "\(member.incarnation)",
                ])
            }
        }
        if ringChanged { rebuildRing() }
    }

    /// Every member that has not left is on the ring: a dead node keeps its
    /// place, so its orders do not move while it is away.
    private func rebuildRing() {
        let view = core.withLock { $0.view }
        let ring = HashRing(nodes: Dictionary(uniqueKeysWithValues: view.filter { $0.status != .left }.map { ($0.id, 1) }))
        let members = Dictionary(uniqueKeysWithValues: view.map { ($0.id, $0) })
        routing.withLock { $0 = (ring, members) }
    }

    static func frame(_ digest: GossipDigest) -> Frame {
        Frame(type: ClusterFrame.gossip.rawValue, payload: ByteBuffer(bytes: digest.encoded()))
    }
}

/// Membership only compares its own readings, so a monotonic clock is the
/// right one (wall time can jump).
enum MonotonicMs {
    static func now() -> Int64 { (ContinuousClock.now - epoch).milliseconds }
    private static let epoch = ContinuousClock.now
}
