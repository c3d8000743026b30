import LogStorage
import OrderDomain
import Logging
import Membership
import NodeRuntime
import Replication
import Wire

/// One event as the feed sends it, with the position just after it.
public struct FeedItem: Sendable, Equatable {
    public let event: EventRecord
    public let position: FeedPosition
}

/// Opens event feeds (`GET /events`) on a node: each reads every origin's
/// log through the node's peer network (its own log in process), as the
/// stats node does, and hands the events out in `FeedOrdering`'s order.
public struct FeedSource: Sendable {
    let network: any PeerNetwork
    /// Where the feed asks for the cluster's members (this node).
    let seed: String
    /// The name the feed's fetches carry. Not a member's id: a fetch of a
    /// member's log in a member's name would count as that member's
    /// acknowledgement.
    let follower: String
    let logger: Logger

    public init(network: any PeerNetwork, seed: String, nodeID: String, logger: Logger) {
        self.network = network
        self.seed = seed
        self.follower = "feed@" + nodeID
        self.logger = logger
    }

    /// Feeds of a node without peers: they read its log in process. Call
    /// once per log (it registers for its commits).
    public static func standalone(log: any LogStore, nodeID: String, logger: Logger) -> FeedSource {
        let signal = CommitSignal()
        log.onCommit { signal.committed($0) }
        return FeedSource(network: LocalLogNetwork(log: log, nodeID: nodeID, signal: signal), seed: LocalLogNetwork.address, nodeID: nodeID, logger: logger)
    }

    /// Feeds of a clustered node: its peers over `network`, itself through
    /// `inbox`.
    public static func clustered(network: any PeerNetwork, peerAddress: String, inbox: any PeerInbox, nodeID: String, logger: Logger) -> FeedSource {
        FeedSource(
            network: SelfShortcutNetwork(base: network, selfAddress: peerAddress, selfID: nodeID, inbox: inbox), seed: peerAddress, nodeID: nodeID,
            logger: logger)
    }

    /// A feed from `position`; `wanted` says which events the client gets
    /// (the others still move its position). At most `bufferLimit` events
    /// wait for the client, plus one batch (`readBatch` events) read per
    /// origin: a slow client slows the reading down.
    public func open(
        from position: FeedPosition, bufferLimit: Int = 1000, readBatch: Int = 500, wanted: @escaping @Sendable (EventRecord) -> Bool = { _ in true }
    ) -> EventFeed {
        let feed = EventFeed(source: self, position: position, bufferLimit: bufferLimit, readBatch: readBatch, wanted: wanted)
        Task { await feed.start() }
        return feed
    }
}

/// The shell of one client's feed: runs a `LogTail` whose sink is this
/// actor, orders what it reads (`FeedOrdering`), asks the cluster where
/// earlier versions are when the ordering needs it, and keeps what is ready
/// for the client in a bounded buffer.
public actor EventFeed: LogSink {
    private let source: FeedSource
    private var ordering: FeedOrdering
    private let bufferLimit: Int
    private let readBatch: Int
    private let wanted: @Sendable (EventRecord) -> Bool
    private var buffer: [FeedItem] = []
    private var bufferHead = 0
    private var pumping = false
    private var closed = false
    private var tail: Task<Void, Never>?
    private var drainWaiters: [(origin: String, through: Int64, continuation: CheckedContinuation<Void, Never>)] = []
    private var roomWaiters: [CheckedContinuation<Void, Never>] = []
    private var reader: (id: UInt64, continuation: CheckedContinuation<[FeedItem]?, Never>)?
    private var readerTimer: Task<Void, Never>?
    private var readerIDs: UInt64 = 0

    init(source: FeedSource, position: FeedPosition, bufferLimit: Int, readBatch: Int, wanted: @escaping @Sendable (EventRecord) -> Bool) {
        self.readBatch = max(1, min(readBatch, 2000))
        self.source = source
        self.ordering = FeedOrdering(from: position)
        self.bufferLimit = max(1, bufferLimit)
        self.wanted = wanted
    }

    func start() {
        guard !closed, tail == nil else { return }
        var config = LogTail.Config(seeds: [source.seed])
        config.fetchEventsMax = UInt32(readBatch)
        let tail = LogTail(sink: self, clients: source.network, config: config, id: source.follower, logger: source.logger)
        self.tail = Task { try? await tail.run() }
    }

    /// Events ready for the client and not yet taken (at most the limit).
    public var buffered: Int { buffer.count - bufferHead }

    /// What the buffer keeps, taken or not (for tests).
    var stored: Int { buffer.count }

    /// Events read but held back (waiting for an earlier version, or for
    /// room in the buffer).
    public var held: Int { ordering.waiting }

    /// Stops reading; a waiting `next` gets nil.
    public func close() {
        guard !closed else { return }
        closed = true
        tail?.cancel()
        for waiter in drainWaiters { waiter.continuation.resume() }
        drainWaiters = []
        for waiter in roomWaiters { waiter.resume() }
        roomWaiters = []
        reader?.continuation.resume(returning: nil)
        reader = nil
        readerTimer?.cancel()
    }

    /// Up to `max` events ready for the client; waits up to `wait` for the
    /// first (an empty answer: nothing came, time for a keep-alive); nil
    /// once closed.
    public func next(max: Int, wait: Duration) async -> [FeedItem]? {
        if closed { return nil }
        if bufferHead < buffer.count { return take(max) }
        readerIDs += 1
        let id = readerIDs
        readerTimer = Task {
            try? await Task.sleep(for: wait)
            if !Task.isCancelled { await self.wakeReader(id, with: []) }
        }
        guard let items = await withCheckedContinuation({ reader = (id, $0) }) else { return nil }
        return items.isEmpty && bufferHead < buffer.count ? take(max) : items
    }

    private func wakeReader(_ id: UInt64, with items: [FeedItem]?) {
        guard let reader, reader.id == id else { return }
        self.reader = nil
        reader.continuation.resume(returning: items)
    }

    private func take(_ max: Int) -> [FeedItem] {
        let end = min(buffer.count, bufferHead + Swift.max(1, max))
        let items = Array(buffer[bufferHead..<end])
        bufferHead = end
        // What went out leaves the buffer (a client that never empties it
        // must not keep everything it was sent).
        if bufferHead == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            bufferHead = 0
        } else if bufferHead >= bufferLimit || bufferHead * 2 >= buffer.count {
            buffer.removeFirst(bufferHead)
            bufferHead = 0
        }
        let waiters = roomWaiters
        roomWaiters = []
        for waiter in waiters { waiter.resume() }
        return items
    }

    // MARK: LogSink

    public func positions() async throws -> [String: Int64] { ordering.position.offsets }

    public func apply(_ records: [EventRecord], origin: String, through: Int64?) async throws -> Int {
        if closed { throw CancellationError() }
        let through = through ?? records.last?.offset ?? 0
        ordering.enqueue(records, origin: origin, through: through)
        await pump()
        while !closed && !ordering.drained(origin, through: through) {
            await withCheckedContinuation { drainWaiters.append((origin, through, $0)) }
        }
        if closed { throw CancellationError() }
        return records.count
    }

    /// Hands out what the ordering lets go, until nothing more can go
    /// (one pump at a time; what others enqueue meanwhile it sees next).
    private func pump() async {
        guard !pumping else { return }
        pumping = true
        defer { pumping = false }
        while !closed {
            switch ordering.next() {
            case .emit(let event, let position):
                if wanted(event) {
                    while !closed && buffer.count - bufferHead >= bufferLimit {
                        await withCheckedContinuation { roomWaiters.append($0) }
                    }
                    if closed { return }
                    buffer.append(FeedItem(event: event, position: position))
                    if let reader {
                        self.reader = nil
                        readerTimer?.cancel()
                        reader.continuation.resume(returning: take(100))
                    }
                }
                wakeDrained()
            case .lookup(let wanted):
                let (found, answeredBy, everyone) = await lookup(Array(Set(wanted.map(\.orderID))).sorted())
                // A version is settled by its writer's answer (it held the
                // version before its own) or by every live node's; a node
                // that could not answer settles nothing: ask again shortly.
                let settled = wanted.filter { everyone || answeredBy.contains($0.writer) }
                ordering.learn(found, asked: settled)
                if settled.count < wanted.count { try? await Task.sleep(for: .milliseconds(200)) }
            case .idle:
                wakeDrained()
                return
            }
        }
    }

    private func wakeDrained() {
        guard !drainWaiters.isEmpty else { return }
        var still: [(origin: String, through: Int64, continuation: CheckedContinuation<Void, Never>)] = []
        for waiter in drainWaiters {
            if ordering.drained(waiter.origin, through: waiter.through) { waiter.continuation.resume() } else { still.append(waiter) }
        }
        drainWaiters = still
    }

    /// Every event the live members hold of these orders (an order's
    /// replicas hold all of its stream; the leader that wrote a version
    /// held the one before it).
    /// Also says which members answered for every order, and whether every
    /// live member did.
    private func lookup(_ orderIDs: [String]) async -> (events: [EventRecord], answeredBy: Set<String>, everyone: Bool) {
        let ids = orderIDs.compactMap { ClientID($0) }
        guard !ids.isEmpty, let view = try? await source.network.view(source.seed, timeout: .seconds(2)) else { return ([], [], false) }
        let members = view.filter { $0.status == .alive && !$0.peer.isEmpty }
        var found: [EventRecord] = []
        var answeredBy: Set<String> = []
        for member in members.sorted(by: { $0.id < $1.id }) {
            var whole = true
            let size = ReplicationCodec.ordersPerGatherMax
            for start in stride(from: 0, to: ids.count, by: size) {
                let chunk = Array(ids[start..<min(ids.count, start + size)])
                guard let reply = try? await source.network.fetch(member.peer, follower: source.follower, .orders(chunk), timeout: .seconds(3)),
                    reply.refusal == nil
                else {
                    whole = false
                    continue
                }
                found += reply.events
            }
            if whole { answeredBy.insert(member.id) }
        }
        return (found, answeredBy, !members.isEmpty && answeredBy.count == members.count)
    }
}
