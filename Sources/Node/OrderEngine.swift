import LogStorage
import Logging
import Metrics
import NodeRuntime
import OrderDomain
import ServiceLifecycle
import Synchronization

/// Why a command could not be answered with a decision.
public enum EngineError: Error, Sendable, CustomStringConvertible {
    /// The log refused or failed the write; nothing was acknowledged.
    case storage(String)
    /// The order's leader could not be reached in time; nothing is known to
    /// have been acknowledged (commands are idempotent: retry).
    case unavailable(String)

    public var description: String {
        switch self {
        case .storage(let message), .unavailable(let message): return message
        }
    }
}

/// Runs order commands wherever the order lives: the local engine, or the
/// dispatcher that forwards to the order's leader.
public protocol OrderService: Sendable {
    var catalog: Catalog { get }
    /// Decides and persists one command; returns once its events are durable.
    func execute(_ orderID: ClientID, _ command: OrderCommand) async throws -> Result<CommandResult, DomainError>
    /// The order's state after every command acknowledged before this call.
    func state(of orderID: ClientID) async throws -> OrderState
}

/// One node's order engine: transactors over the node's event log, the
/// passivation sweep and the timer for held payments.
public final class OrderEngine: Service, OrderService, Sendable {
    public let config: EngineConfig
    public let catalog: Catalog
    public let log: any LogStore
    private let directory: TransactorDirectory
    private let replication: (any ReplicationCoordinator)?
    private let clock: any NodeClock
    private let logger: Logger
    private let commandTimer = Metrics.Timer(label: "orderly_command_seconds")
    /// The replication view's epoch at the last timer scan.
    private let scannedEpoch = Mutex<UInt64?>(nil)

    public init(
        log: any LogStore, catalog: Catalog, config: EngineConfig, replication: (any ReplicationCoordinator)? = nil,
        clock: any NodeClock, logger: Logger = Logger(label: "orderly.engine")
    ) {
        var logger = logger
        logger[metadataKey: "node"] = "\(config.nodeID)"
        self.log = log
        self.catalog = catalog
        self.config = config
        self.clock = clock
        self.logger = logger
        self.replication = replication
        let transactorLogger = logger
        self.directory = TransactorDirectory(clock: clock) { orderID in
            Transactor(
                orderID: orderID, log: log, catalog: catalog, config: config, replication: replication, clock: clock,
                logger: transactorLogger)
        }
    }

    /// Decides and persists one command. Returns after its events are durable.
    public func execute(_ orderID: ClientID, _ command: OrderCommand) async throws -> Result<CommandResult, DomainError> {
        let start = clock.monotonicNanoseconds
        let result = try await withTransactor(orderID) { try await $0.handle(command) }
        commandTimer.recordNanoseconds(clock.monotonicNanoseconds - start)
        return result
    }

    /// The order's state after every command acknowledged before this call.
    public func state(of orderID: ClientID) async throws -> OrderState {
        try await withTransactor(orderID) { try await $0.current() }
    }

    private func withTransactor<T: Sendable>(_ orderID: ClientID, _ body: (Transactor) async throws -> T) async throws -> T {
        let transactor = await directory.checkOut(orderID)
        do {
            let value = try await body(transactor)
            await directory.checkIn(orderID)
            return value
        } catch {
            await directory.checkIn(orderID)
            logger.error("order unavailable", metadata: ["order": "\(orderID)", "error": "\(error)"])
            switch error {
            case let error as EngineError: throw error
            case let error as EventLogError: throw EngineError.storage(error.description)
            case let error as EventDecodingError: throw EngineError.storage("order \(orderID) cannot be read: \(error)")
            default: throw EngineError.storage("\(error)")
            }
        }
    }

    /// Events of these orders arrived from another node: active
    /// transactors reload before their next command.
    public func invalidate(_ orderIDs: Set<String>) async {
        for transactor in await directory.active(orderIDs) {
            await transactor.invalidate()
        }
    }

    public var activeTransactors: Int {
        get async { await directory.activeCount }
    }

    /// Passivates idle transactors now (the sweep calls this periodically).
    public func passivateIdle(olderThan idleTimeout: Duration) async {
        await Self.passivate(await directory.takeIdle(idleTimeout: idleTimeout), checkpointAfter: config.passivationCheckpointEvents)
    }

    /// Most passivations in flight at once. Running them concurrently lets
    /// their checkpoints share group commits instead of one fsync each.
    static let passivationsInFlightMax = 512

    /// Passivates `transactors`, each writing a checkpoint when at least
    /// `checkpointAfter` of its order's events came since its last one.
    private static func passivate(_ transactors: [Transactor], checkpointAfter: Int64) async {
        var start = 0
        while start < transactors.count {
            let chunk = transactors[start..<min(start + passivationsInFlightMax, transactors.count)]
            await withDiscardingTaskGroup { group in
                for transactor in chunk { group.addTask { await transactor.passivate(checkpointAfter: checkpointAfter) } }
            }
            start += chunk.count
        }
    }

    /// Runs the timers of held payments that are due. A timer of an order
    /// this node leads fires (`expireHeldPayments`); one of an order another
    /// node leads (set by a copy) is looked at again later, or cleared once
    /// the order holds no payment. A timer that fails is retried at the next
    /// scan and keeps no other from firing; timers fire concurrently, so
    /// one that waits (its order's replicas not answering) holds up none of
    /// the others. The scan returns once every timer it started is done.
    ///
    /// Once the view has moved since the last scan, the timer of every
    /// order this node now leads fires too, due or not: one looked at while
    /// another node led the order was put off by `timerRecheckMs`, and the
    /// node that took the order over (here: this one, done recovering its
    /// log) would otherwise wait that long to refund what was due (seed
    /// 93600). Firing early is harmless: only holds past their end are
    /// refunded, and the timer is set again to the next one's end.
    public func fireDueDeadlines() async {
        let now = clock.wallMs
        let epoch = replication?.epoch
        let viewMoved = epoch != nil && scannedEpoch.withLock { scanned in
            defer { scanned = epoch }
            return scanned != nil && scanned != epoch
        }
        let due: [(orderID: String, dueAt: Int64)]
        do {
            due = try await log.deadlines(limit: config.deadlinesPerScanMax).filter { deadline in
                deadline.dueAt <= now || (viewMoved && ClientID(deadline.orderID).map { replication?.leads($0) ?? false } == true)
            }
        } catch {
            logger.warning("timer scan failed", metadata: ["error": "\(error)"])
            return
        }
        // At most `timersInFlightMax` at once, each started as soon as
        // another ends: one whose order cannot be written now (its replicas
        // recovering, a term refused) waits out its timeouts while the
        // others fire (seed 96047).
        await withTaskGroup(of: Void.self) { group in
            var inFlight = 0
            for deadline in due {
                guard !Task.isCancelled else { break }
                guard let orderID = ClientID(deadline.orderID) else { continue }
                if inFlight == Self.timersInFlightMax {
                    await group.next()
                    inFlight -= 1
                }
                group.addTask { await self.fire(orderID, now: now) }
                inFlight += 1
            }
        }
    }

    /// Most timers fired at once by one scan.
    static let timersInFlightMax = 64

    /// One due timer: fired here if this node leads its order, else looked
    /// at again later. A failure is logged; the timer stays for the next scan.
    private func fire(_ orderID: ClientID, now: Int64) async {
        do {
            if replication?.leads(orderID) ?? true {
                _ = try await execute(orderID, .expireHeldPayments)
            } else {
                try await reviewTimer(of: orderID, now: now)
            }
        } catch {
            logger.warning("a timer failed; it is tried again at the next scan", metadata: ["order": "\(orderID)", "error": "\(error)"])
        }
    }

    /// The timer of an order led elsewhere: cleared when the order holds no
    /// held payment any more in this node's copy of it and needs no repair
    /// of a merge (`Replicator.timers`), else set to be looked at
    /// again after `timerRecheckMs` (its leader fires it meanwhile; should
    /// this node lead it by then, it fires it itself).
    private func reviewTimer(of orderID: ClientID, now: Int64) async throws {
        let stream = try await log.events(orderID: orderID.rawValue, afterVersion: 0).map { try $0.streamEvent() }
        let state = OrderMerge.fold(OrderState(orderID: orderID), stream)
        // A merged state its leader has not repaired yet keeps the timer too.
        let due = OrderMerge.reconcile(state).isEmpty ? state.nextHoldDeadlineMs : now
        let change: DeadlineChange = due == nil ? .clear : .set(max(due!, now + config.timerRecheckMs))
        _ = try await log.append(AppendRequest(events: [], deadline: (orderID.rawValue, change)))
    }

    /// The sweep and the timers, until graceful shutdown; then every
    /// transactor is passivated (checkpointed) and the log closed.
    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.runLoops() }
            try? await gracefulShutdown()
            group.cancelAll()
        }
        await shutdown()
    }

    /// The passivation sweep and the timers of held payments, until the
    /// task is cancelled.
    public func runLoops() async {
        await withDiscardingTaskGroup { group in
            group.addTask { [self] in
                while !Task.isCancelled {
                    try? await clock.sleep(for: config.sweepInterval)
                    await passivateIdle(olderThan: config.idleTimeout)
                }
            }
            group.addTask { [self] in
                while !Task.isCancelled {
                    try? await clock.sleep(for: config.deadlineScanInterval)
                    await fireDueDeadlines()
                }
            }
        }
    }

    /// Checkpoints every idle transactor and closes the log.
    public func shutdown() async {
        // A graceful stop checkpoints every order that changed: the next
        // start reads each from its checkpoint.
        await Self.passivate(await directory.takeAllIdle(), checkpointAfter: 1)
        log.close()
        logger.info("engine stopped")
    }
}

extension Duration {
    /// Whole nanoseconds (truncated).
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
