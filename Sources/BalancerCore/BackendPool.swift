import HashRing

public enum Strategy: String, Sendable, CaseIterable {
    case roundRobin = "round-robin"
    case weighted
    case leastOutstanding = "least-outstanding"
    case ring
}

/// One API node as the balancer sees it.
public struct Backend: Sendable, Equatable {
    public let id: String
    public let address: String
    /// Configured weight (weighted strategy), 1 to 100.
    public var weight: Int

    public init(id: String, address: String, weight: Int = 1) {
        self.id = id
        self.address = address
        self.weight = weight
    }
}

/// The backends, their health and load, and the choice of one per request.
/// Pure: time and randomness come in as arguments.
public struct BackendPool: Sendable {
    public struct Entry: Sendable, Equatable {
        public var backend: Backend
        public var health = BackendHealth()
        public var inFlight = 0
        /// Smooth weighted round-robin's running weight.
        public var currentWeight = 0
        /// Moving average of answer times.
        public var latencyMs: Double = 0
        public var requests = 0
        public var failures = 0
    }

    public let strategy: Strategy
    public let config: HealthConfig
    public let replicationFactor: Int
    /// Weighted strategy: weights from each backend's measured answer time
    /// (faster gets more) instead of the configured ones.
    public let weightsFromLatency: Bool
    public private(set) var entries: [String: Entry] = [:]
    /// The keys of `entries`, sorted: picks walk them in a stable order
    /// without sorting on every request.
    private var sortedIDs: [String] = []
    private var ring = HashRing(nodes: [:])
    private var nextIndex = 0

    public init(strategy: Strategy, config: HealthConfig = HealthConfig(), replicationFactor: Int = 3, weightsFromLatency: Bool = false) {
        self.strategy = strategy
        self.weightsFromLatency = weightsFromLatency
        self.config = config
        self.replicationFactor = replicationFactor
    }

    /// The backends now known (discovery, or the static list). A backend
    /// that appears starts healthy; one that is gone is dropped. `ringNodes`
    /// are the members on the API nodes' ring (the ones that have not left).
    public mutating func update(_ backends: [Backend], ringNodes: [String]? = nil) {
        let ids = Set(backends.map(\.id))
        for id in entries.keys where !ids.contains(id) { entries[id] = nil }
        for backend in backends {
            if entries[backend.id] == nil {
                entries[backend.id] = Entry(backend: backend)
            } else {
                entries[backend.id]!.backend = backend
            }
        }
        sortedIDs = entries.keys.sorted()
        let nodes = ringNodes ?? backends.map(\.id)
        let wanted = Dictionary(uniqueKeysWithValues: nodes.map { ($0, 1) })
        if ring.weights != wanted { ring = HashRing(nodes: wanted) }
    }

    /// The backends that may get traffic; all of them when none may (a
    /// balancer that refuses everything helps nobody).
    public func eligible(nowMs: Int64, excluding: Set<String> = []) -> [String] {
        let candidates = excluding.isEmpty ? sortedIDs : sortedIDs.filter { !excluding.contains($0) }
        // The common case, every candidate usable, makes no new array.
        if candidates.allSatisfy({ entries[$0]!.health.usable(nowMs: nowMs) }) { return candidates }
        let usable = candidates.filter { entries[$0]!.health.usable(nowMs: nowMs) }
        return usable.isEmpty ? candidates : usable
    }

    /// Chooses a backend for a request; `orderID` for the ring strategy.
    /// `excluding` are backends already tried for this request.
    public mutating func pick(orderID: String?, nowMs: Int64, excluding: Set<String> = [], random: inout some RandomNumberGenerator) -> String? {
        let ids = eligible(nowMs: nowMs, excluding: excluding)
        guard !ids.isEmpty else { return nil }
        switch strategy {
        case .roundRobin:
            return roundRobin(ids)
        case .weighted:
            return smoothWeighted(ids, nowMs: nowMs)
        case .leastOutstanding:
            return powerOfTwoChoices(ids, random: &random)
        case .ring:
            // Straight to the order's leader: the first replica of its
            // preference list that may get traffic.
            if let orderID {
                let usable = Set(ids)
                if let leader = ring.preferenceList(for: orderID, count: replicationFactor).first(where: usable.contains) { return leader }
            }
            return roundRobin(ids)
        }
    }

    private mutating func roundRobin(_ ids: [String]) -> String {
        defer { nextIndex &+= 1 }
        return ids[nextIndex % ids.count]
    }

    /// nginx's smooth weighted round-robin: each pick adds every weight to
    /// its running weight, takes the largest, and takes the total off it.
    /// Spreads picks evenly in proportion to the weights.
    private mutating func smoothWeighted(_ ids: [String], nowMs: Int64) -> String {
        var total = 0
        var best: String?
        for id in ids {
            let entry = entries[id]!
            let base = weightsFromLatency ? Self.latencyWeight(entry.latencyMs) : entry.backend.weight
            let weight = max(1, Int((Double(base * 10) * entry.health.slowStartFactor(nowMs: nowMs, config: config)).rounded()))
            entries[id]!.currentWeight += weight
            total += weight
            if best == nil || entries[id]!.currentWeight > entries[best!]!.currentWeight { best = id }
        }
        entries[best!]!.currentWeight -= total
        return best!
    }

    /// 1 to 100, inversely proportional to the answer time (a backend not
    /// measured yet counts as 1 ms).
    static func latencyWeight(_ latencyMs: Double) -> Int {
        Int(min(100, max(1, (100 / max(latencyMs, 1)).rounded())))
    }

    /// Two distinct backends at random; the one with fewer requests in
    /// flight (then the faster) wins.
    private func powerOfTwoChoices(_ ids: [String], random: inout some RandomNumberGenerator) -> String {
        guard ids.count > 1 else { return ids[0] }
        let first = Int.random(in: 0..<ids.count, using: &random)
        var second = Int.random(in: 0..<(ids.count - 1), using: &random)
        if second >= first { second += 1 }
        let a = entries[ids[first]]!
        let b = entries[ids[second]]!
        if a.inFlight != b.inFlight { return a.inFlight < b.inFlight ? ids[first] : ids[second] }
        return a.latencyMs <= b.latencyMs ? ids[first] : ids[second]
    }

    public mutating func requestStarted(_ id: String) {
        entries[id]?.inFlight += 1
    }

    public mutating func requestEnded(_ id: String, failed: Bool, latencyMs: Double, nowMs: Int64) {
        guard entries[id] != nil else { return }
        entries[id]!.inFlight = max(0, entries[id]!.inFlight - 1)
        entries[id]!.requests += 1
        if failed { entries[id]!.failures += 1 }
        let previous = entries[id]!.latencyMs
        entries[id]!.latencyMs = previous == 0 ? latencyMs : previous * 0.9 + latencyMs * 0.1
        entries[id]!.health.requestEnded(failed: failed, nowMs: nowMs, config: config)
    }

    public mutating func activeCheck(_ id: String, passed: Bool, nowMs: Int64) {
        entries[id]?.health.activeCheck(passed: passed, nowMs: nowMs, config: config)
    }
}
