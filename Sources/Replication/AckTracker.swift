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
        /// `needed` never falls below this when followers are lost (a
        /// majority of the list, in consistent mode).
        public var floor: Int
        /// Set in consistent mode: a follower's copy counts only while its
        /// view vouches for the write (see `VouchView`).
        public var fence: Fence?
    }

    public private(set) var positions: [String: Int64] = [:]
    /// Each follower's latest view (consistent mode).
    public private(set) var views: [String: VouchView] = [:]
    private var waiting: [UInt64: Waiter] = [:]

    public init() {}

    public var waitingCount: Int { waiting.count }

    /// Registers a reply that waits for `needed` of `followers` to hold
    /// `offset` (and, with a fence, to vouch for it). Returns true when it
    /// is released at once.
    public mutating func add(token: UInt64, offset: Int64, followers: Set<String>, needed: Int, floor: Int = 0, fence: Fence? = nil) -> Bool {
        let waiter = Waiter(token: token, offset: offset, followers: followers, needed: needed, floor: min(floor, needed), fence: fence)
        if isReleased(waiter) { return true }
        waiting[token] = waiter
        return false
    }

    /// A follower holds every event through `offset`, and sees the cluster
    /// as `view` (nil: unchanged). Returns the tokens this releases.
    /// Positions never move back (an old, delayed ack is harmless).
    public mutating func acknowledge(follower: String, through offset: Int64, view: VouchView? = nil) -> [UInt64] {
        let viewChanged = view.map { take($0, from: follower) } ?? false
        guard offset > positions[follower, default: 0] || viewChanged else { return [] }
        positions[follower] = max(offset, positions[follower, default: 0])
        return releaseReady { $0.followers.contains(follower) }
    }

    /// A follower's view changed. Returns the tokens this releases.
    public mutating func noteView(follower: String, _ view: VouchView) -> [UInt64] {
        guard take(view, from: follower) else { return [] }
        return releaseReady { $0.followers.contains(follower) }
    }

    /// Keeps a follower's view unless an older one (by its sequence: views
    /// travel on several messages and may arrive out of order); the terms
    /// it granted only ever rise. Returns whether the view changed.
    private mutating func take(_ view: VouchView, from follower: String) -> Bool {
        guard let known = views[follower] else {
            views[follower] = view
            return true
        }
        guard view.sequence >= known.sequence else { return false }
        var merged = view
        merged.promises.merge(known.promises) { max($0, $1) }
        guard merged != known else { return false }
        views[follower] = merged
        return true
    }

    /// A follower left the set of live replicas: replies waiting for every
    /// live replica (`all`) stop waiting for it, but never below their
    /// floor (in consistent mode a majority of the list: `all` is never
    /// weaker than `quorum`); `quorum` replies keep their count, so a lost
    /// follower can only delay them, never weaken them. Returns the tokens
    /// released.
    public mutating func followerLost(_ follower: String, relaxAll: Bool) -> [UInt64] {
        guard relaxAll else { return [] }
        for (token, var waiter) in waiting where waiter.followers.contains(follower) && waiter.needed == waiter.followers.count {
            waiter.followers.remove(follower)
            waiter.needed = max(waiter.floor, waiter.followers.count)
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
        views[follower] = nil
    }

    private func isReleased(_ waiter: Waiter) -> Bool {
        guard waiter.needed > 0 else { return true }
        var holding = 0
        for follower in waiter.followers where positions[follower, default: 0] >= waiter.offset {
            if let fence = waiter.fence, !fence.isVouched(by: views[follower]) { continue }
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
