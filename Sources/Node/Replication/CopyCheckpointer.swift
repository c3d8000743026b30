import LogStorage
import Logging
import Metrics
import NodeRuntime
import OrderDomain

/// Checkpoints of the orders a node holds as a follower, so that when it
/// takes one over (failover, or its own restart) activation starts from a
/// checkpoint as it does on the leader. Counts the events copied per order
/// and, every `every` of them, folds the order's events and writes a
/// checkpoint guarded by their count (see `Checkpoint.coveredEvents`): an
/// event copied after the read makes the write a no-op instead of a wrong
/// checkpoint. Runs after the batch is stored, off the copy path.
public actor CopyCheckpointer {
    private let log: any LogStore
    private let spawner: any TaskSpawner
    private let every: Int
    private let logger: Logger
    private var counts: [String: Int] = [:]
    private var due: [String] = []
    private var draining = false
    private let written = Counter(label: "orderly_follower_checkpoints_total")
    /// Orders counted at most; beyond, the least advanced are forgotten
    /// (they get a checkpoint later, or when led).
    private static let trackedMax = 100_000

    public init(log: any LogStore, every: Int64, spawner: any TaskSpawner, logger: Logger) {
        self.log = log
        self.spawner = spawner
        self.every = Int(max(1, every))
        self.logger = logger
    }

    /// Events copied per order (own orders are the transactors' business).
    public func noteCopied(_ copied: [String: Int]) {
        for (order, count) in copied {
            let total = counts[order, default: 0] + count
            if total >= every {
                counts[order] = nil
                due.append(order)
            } else {
                counts[order] = total
            }
        }
        if counts.count > Self.trackedMax {
            counts = counts.filter { $0.value >= every / 2 }
            if counts.count > Self.trackedMax { counts = [:] }
        }
        if !due.isEmpty && !draining {
            draining = true
            spawner.spawn { await self.drain() }
        }
    }

    private func drain() async {
        while !due.isEmpty {
            let order = due.removeFirst()
            do {
                try await checkpoint(order)
            } catch {
                logger.warning("follower checkpoint failed", metadata: ["order": "\(order)", "error": "\(error)"])
            }
        }
        draining = false
    }

    private func checkpoint(_ order: String) async throws {
        guard let orderID = ClientID(order) else { return }
        let records = try await log.events(orderID: order, afterVersion: 0)
        guard !records.isEmpty else { return }
        let stream = try records.map { try $0.streamEvent() }
        let state = OrderMerge.fold(OrderState(orderID: orderID), stream)
        _ = try await log.append(AppendRequest(
            events: [], checkpoint: Checkpoint(orderID: order, version: state.version, state: state.snapshotJSON(eventsHeld: Int64(records.count)), coveredEvents: Int64(records.count))))
        written.increment()
    }
}
