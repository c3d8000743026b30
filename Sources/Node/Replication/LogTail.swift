import EventLog
import Logging
import NodeRuntime
import Membership
import Metrics
import ServiceLifecycle
import Synchronization

/// Where a role outside the ring (stats, warehouse) keeps what it read of
/// each log. MUST store a batch and move the origin's position to `through`
/// in one transaction, so every event is taken exactly once.
public protocol LogSink: Sendable {
    /// Returns the events that were new.
    func apply(_ records: [EventRecord], origin: String, through: Int64?) async throws -> Int
    func positions() async throws -> [String: Int64]
}

/// Tails every origin's log into a sink: from the origin while it
/// is alive, else from the copies the live members hold (each holds the
/// orders the ring gives it, so all of them are read and the position moves
/// only as far as every one has answered for). Members are learnt by asking
/// any known API node for its view, seeds first.
public final class LogTail: Service, Sendable {
    public struct Config: Sendable {
        public var seeds: [String]
        public var fetchEventsMax: UInt32 = 2000
        public var fetchWaitMs: UInt32 = 500
        public var viewInterval: Duration = .milliseconds(500)
        public var retryDelay: Duration = .milliseconds(200)
        public init(seeds: [String]) { self.seeds = seeds }
    }

    private let store: any LogSink
    private let clients: any PeerNetwork
    private let clock: any NodeClock
    private let spawner: any TaskSpawner
    private let config: Config
    private let selfID: String
    private let logger: Logger
    private let members = Mutex<[String: Member]>([:])
    /// Per origin: its newest offset as last reported (for lag).
    private let lastOffsets = Mutex<[String: Int64]>([:])
    private let counted: Counter

    public init(
        sink: any LogSink, clients: any PeerNetwork, config: Config, id: String, logger: Logger,
        clock: any NodeClock = SystemClock(), spawner: any TaskSpawner = GlobalTaskSpawner()
    ) {
        self.store = sink
        self.clock = clock
        self.spawner = spawner
        self.counted = Counter(label: "orderly_tail_events_taken_total", dimensions: [("role", id)])
        self.clients = clients
        self.config = config
        self.selfID = id
        self.logger = logger
    }

    /// Each origin's newest offset as its holders last said.
    public var originEnds: [String: Int64] { lastOffsets.withLock { $0 } }

    /// HTTP addresses of the API nodes alive in the last view.
    public var apiAddresses: [String] {
        members.withLock { $0.values.filter { $0.status == .alive && !$0.http.isEmpty }.map(\.http).sorted() }
    }

    /// Heard from the cluster at least once.
    public var connected: Bool { members.withLock { !$0.isEmpty } }

    public func run() async throws {
        var loops: [String: Task<Void, Never>] = [:]
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            await refreshView()
            var origins = Set(members.withLock { Array($0.keys) })
            if let known = try? await store.positions() { origins.formUnion(known.keys) }
            for origin in origins where loops[origin] == nil {
                loops[origin] = spawner.spawn { await self.follow(origin) }
            }
            try? await clock.sleep(for: config.viewInterval)
        }
        for task in loops.values { task.cancel() }
    }

    private func refreshView() async {
        let known = members.withLock { $0.values.filter { $0.status == .alive }.map(\.peer) }
        for address in Set(config.seeds + known).sorted() where !address.isEmpty {
            guard let view = try? await clients.view(address, timeout: .seconds(1)), !view.isEmpty else { continue }
            members.withLock { current in
                for member in view { current[member.id] = member }
            }
            return
        }
    }

    private func follow(_ origin: String) async {
        var logger = self.logger
        logger[metadataKey: "origin"] = "\(origin)"
        var position: Int64 = (try? await store.positions())?[origin] ?? 0
        var lastError = ""
        var lastWarnedMs = clock.monotonicMs - 60_000
        while !Task.isCancelled {
            let view = members.withLock { $0 }
            do {
                if let member = view[origin], member.status == .alive, !member.peer.isEmpty {
                    position = try await fetch(origin, from: member.peer, after: position)
                } else {
                    let holders = view.values.filter { $0.status == .alive && !$0.peer.isEmpty && $0.id != origin }
                    let moved = try await fetchCopies(origin, from: holders.map(\.peer), after: position)
                    if moved == position { try await clock.sleep(for: .seconds(1)) }
                    position = moved
                }
            } catch is CancellationError {
                return
            } catch {
                // A node going away is routine; a batch that cannot be stored
                // (a payload this version cannot read, a full disk) stops this
                // log here and must be seen: said once per kind of error, and
                // again every 30 s while it lasts.
                let text = "\(error)"
                let nowMs = clock.monotonicMs
                if text != lastError || nowMs - lastWarnedMs > 30_000 {
                    logger.warning("cannot take this log further yet; retrying", metadata: ["position": "\(position)", "error": "\(text)"])
                    lastError = text
                    lastWarnedMs = nowMs
                }
                try? await clock.sleep(for: config.retryDelay)
            }
        }
    }

    /// One long-polled fetch from the origin; returns the new position.
    private func fetch(_ origin: String, from address: String, after position: Int64) async throws -> Int64 {
        let reply = try await clients.fetch(
            address, follower: selfID, .log(origin: origin, fromOffset: position + 1, eventsMax: config.fetchEventsMax, waitMs: config.fetchWaitMs),
            timeout: .milliseconds(Int(config.fetchWaitMs)) + .seconds(5))
        if let refusal = reply.refusal { throw EngineError.unavailable("\(origin) refused: \(refusal)") }
        lastOffsets.withLock { $0[origin] = reply.holderLastOffset }
        guard reply.throughOffset > position else { return position }
        guard reply.events.allSatisfy({ $0.origin == origin && $0.offset > position && $0.offset <= reply.throughOffset }) else {
            throw EngineError.unavailable("\(address) sent events of the wrong log or position")
        }
        counted.increment(by: try await store.apply(reply.events, origin: origin, through: reply.throughOffset))
        return reply.throughOffset
    }

    /// The origin is away: reads its log from every live holder's copy and
    /// moves to the least position they all answered for.
    private func fetchCopies(_ origin: String, from holders: [String], after position: Int64) async throws -> Int64 {
        guard !holders.isEmpty else { return position }
        var events: [String: EventRecord] = [:]
        var through = Int64.max
        var end: Int64 = 0
        for address in holders {
            let reply = try await clients.fetch(
                address, follower: selfID, .log(origin: origin, fromOffset: position + 1, eventsMax: config.fetchEventsMax, waitMs: 0),
                timeout: .seconds(5))
            if let refusal = reply.refusal { throw EngineError.unavailable("\(address) refused: \(refusal)") }
            through = min(through, reply.throughOffset)
            end = max(end, reply.holderLastOffset)
            for event in reply.events where event.origin == origin { events[event.eventID] = event }
        }
        lastOffsets.withLock { $0[origin] = max($0[origin] ?? 0, end) }
        guard through > position, through != .max else { return position }
        let batch = events.values.filter { $0.offset > position && $0.offset <= through }.sorted { $0.offset < $1.offset }
        counted.increment(by: try await store.apply(batch, origin: origin, through: through))
        return through
    }
}
