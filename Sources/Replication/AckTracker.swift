/// The leader's side of log shipping: how far each follower holds this
/// node's log, and which client replies that position releases.
///
/// A follower acknowledges by position ("I hold every event through offset
/// N"), so the tracker needs one integer per follower, and one entry per
/// reply waiting: its memory is bounded by the replies in flight, never by
/// how far a follower lags.
public struct AckTracker: Sendable {
    public struct Waiter: Sendable, Equatable {
        public let token: UInt64
        /// Newest offset of the write.
        public let offset: Int64
        public var followers: Set<String>
        public var needed: Int
    }

    public private(set) var positions: [String: Int64] = [:]
    private var waiting: [UInt64: Waiter] = [:]

    public init() {}

    public var waitingCount: Int { waiting.count }

    /// Registers a reply that waits for `needed` of `followers` to hold
    /// `offset`. Returns true when it is released at once.
    public mutating func add(token: UInt64, offset: Int64, followers: Set<String>, needed: Int) -> Bool {
        let waiter = Waiter(token: token, offset: offset, followers: followers, needed: needed)
        if isReleased(waiter) { return true }
        waiting[token] = waiter
        return false
    }

    /// A follower holds every event through `offset`. Returns the tokens
    /// this releases. Positions never move back (an old, delayed ack is
    /// harmless).
    public mutating func acknowledge(follower: String, through offset: Int64) -> [UInt64] {
        guard offset > positions[follower, default: 0] else { return [] }
        positions[follower] = offset
        return releaseReady { $0.followers.contains(follower) }
    }

    /// A follower left the set of live replicas: replies waiting for every
    /// live replica (`all`) stop waiting for it; `quorum` replies keep
    /// their count, so a lost follower can only delay them, never weaken
    /// them. Returns the tokens released.
    public mutating func followerLost(_ follower: String, relaxAll: Bool) -> [UInt64] {
        guard relaxAll else { return [] }
        for (token, var waiter) in waiting where waiter.followers.contains(follower) && waiter.needed == waiter.followers.count {
            waiter.followers.remove(follower)
            waiter.needed = waiter.followers.count
            waiting[token] = waiter
        }
        return releaseReady { _ in true }
    }

    /// Stops waiting for a reply (it timed out or its caller went away).
    public mutating func cancel(token: UInt64) {
        waiting[token] = nil
    }

    /// Forgets a follower's position, e.g. when it restarts from scratch.
    public mutating func reset(follower: String) {
        positions[follower] = nil
    }

    private func isReleased(_ waiter: Waiter) -> Bool {
        guard waiter.needed > 0 else { return true }
        var holding = 0
        for follower in waiter.followers where positions[follower, default: 0] >= waiter.offset {
            holding += 1
            if holding >= waiter.needed { return true }
        }
        return false
    }

    private mutating func releaseReady(_ candidate: (Waiter) -> Bool) -> [UInt64] {
        var released: [UInt64] = []
        for (token, waiter) in waiting where candidate(waiter) && isReleased(waiter) {
            released.append(token)
        }
        for token in released { waiting[token] = nil }
        return released.sorted()
    }
}
