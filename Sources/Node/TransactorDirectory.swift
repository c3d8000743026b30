import Logging
import Metrics
import NodeRuntime
import OrderDomain

/// Where the active transactors of this node live. A command checks its
/// transactor out and back in; the sweep passivates only transactors with no
/// command in flight, and removes them before passivating, so a command that
/// arrives meanwhile gets a fresh activation and is never lost or run twice.
actor TransactorDirectory {
    private struct Entry {
        let transactor: Transactor
        var inFlight: Int
        /// Monotonic ms.
        var lastUsed: Int64
    }

    private var entries: [ClientID: Entry] = [:]
    private let makeTransactor: @Sendable (ClientID) -> Transactor
    private let clock: any NodeClock
    private let activeGauge = Gauge(label: "orderly_active_transactors")
    private let activations = Counter(label: "orderly_transactor_activations_total")
    private let passivations = Counter(label: "orderly_transactor_passivations_total")

    init(clock: any NodeClock, makeTransactor: @escaping @Sendable (ClientID) -> Transactor) {
        self.clock = clock
        self.makeTransactor = makeTransactor
    }

    var activeCount: Int { entries.count }

    /// Returns the order's transactor, activating one if needed. MUST be
    /// paired with `checkIn`.
    func checkOut(_ orderID: ClientID) -> Transactor {
        if var entry = entries[orderID] {
            entry.inFlight += 1
            entries[orderID] = entry
            return entry.transactor
        }
        let transactor = makeTransactor(orderID)
        entries[orderID] = Entry(transactor: transactor, inFlight: 1, lastUsed: clock.monotonicMs)
        activations.increment()
        activeGauge.record(entries.count)
        return transactor
    }

    func checkIn(_ orderID: ClientID) {
        guard var entry = entries[orderID] else { return }
        entry.inFlight -= 1
        entry.lastUsed = clock.monotonicMs
        entries[orderID] = entry
    }

    /// The active transactors among these orders.
    func active(_ orderIDs: Set<String>) -> [Transactor] {
        guard !entries.isEmpty else { return [] }
        return orderIDs.compactMap { ClientID($0).flatMap { entries[$0]?.transactor } }
    }

    /// Removes and returns the transactors idle for at least `idleTimeout`.
    /// The caller passivates them.
    func takeIdle(idleTimeout: Duration) -> [Transactor] {
        let now = clock.monotonicMs
        let idleMs = idleTimeout.milliseconds
        var idle: [Transactor] = []
        for (orderID, entry) in entries where entry.inFlight == 0 && now - entry.lastUsed >= idleMs {
            entries[orderID] = nil
            idle.append(entry.transactor)
        }
        if !idle.isEmpty {
            passivations.increment(by: idle.count)
            activeGauge.record(entries.count)
        }
        return idle
    }

    /// Removes every idle transactor regardless of age (shutdown).
    func takeAllIdle() -> [Transactor] {
        takeIdle(idleTimeout: .zero)
    }
}
