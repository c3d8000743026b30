/// Tunables of health: active checks, passive ejection, slow start.
public struct HealthConfig: Sendable, Equatable {
    /// Successful active checks in a row that make an unhealthy backend healthy.
    public var rise = 2
    /// Failed active checks in a row that make a healthy backend unhealthy.
    public var fall = 2
    /// Consecutive 5xx answers (or connection failures) that eject a backend.
    public var ejectAfterFailures = 3
    /// The first ejection lasts this long; each further one doubles it.
    public var ejectionBaseMs: Int64 = 1_000
    public var ejectionMaxMs: Int64 = 30_000
    /// A backend that comes back takes a growing share of the traffic
    /// (from a tenth to all) over this long.
    public var slowStartMs: Int64 = 5_000

    public init() {}
}

/// One backend's health, as a pure state machine driven by events and the
/// time they happen at.
public struct BackendHealth: Sendable, Equatable {
    public enum State: String, Sendable, Equatable {
        case healthy, unhealthy, ejected
    }

    public private(set) var state: State = .healthy
    public private(set) var ejectedUntilMs: Int64 = 0
    /// Ejections so far: the next one lasts longer.
    public private(set) var ejections = 0
    /// When the backend last became usable again (slow start).
    public private(set) var recoveredAtMs: Int64?
    private var checksPassed = 0
    private var checksFailed = 0
    private var failuresInARow = 0

    public init() {}

    /// May get traffic at `nowMs`.
    public func usable(nowMs: Int64) -> Bool {
        switch state {
        case .healthy: return true
        case .unhealthy: return false
        case .ejected: return nowMs >= ejectedUntilMs
        }
    }

    /// The share of its weight a recovering backend gets, 0.1 to 1.
    public func slowStartFactor(nowMs: Int64, config: HealthConfig) -> Double {
        guard let since = recoveredAtMs, config.slowStartMs > 0 else { return 1 }
        let elapsed = Double(nowMs - since) / Double(config.slowStartMs)
        return min(1, max(0.1, elapsed))
    }

    public mutating func activeCheck(passed: Bool, nowMs: Int64, config: HealthConfig) {
        if passed {
            checksPassed += 1
            checksFailed = 0
            if state == .unhealthy && checksPassed >= config.rise {
                state = .healthy
                failuresInARow = 0
                recoveredAtMs = nowMs
            }
        } else {
            checksFailed += 1
            checksPassed = 0
            if state != .unhealthy && checksFailed >= config.fall { state = .unhealthy }
        }
        if state == .ejected && nowMs >= ejectedUntilMs && passed {
            state = .healthy
            recoveredAtMs = nowMs
        }
    }

    /// A proxied request ended: `failed` for a connection failure, a backend
    /// gone before answering, or a 5xx.
    public mutating func requestEnded(failed: Bool, nowMs: Int64, config: HealthConfig) {
        if state == .ejected && nowMs >= ejectedUntilMs {
            // The ejection is over: this was the trial request.
            state = failed ? .ejected : .healthy
            if !failed { recoveredAtMs = nowMs }
        }
        guard failed else {
            failuresInARow = 0
            return
        }
        failuresInARow += 1
        if failuresInARow >= config.ejectAfterFailures && state != .unhealthy {
            ejections += 1
            let shift = min(ejections - 1, 20)
            ejectedUntilMs = nowMs + min(config.ejectionMaxMs, config.ejectionBaseMs << shift)
            state = .ejected
            failuresInARow = 0
        }
    }
}
