import EventLog
import Logging
import OrderDomain

/// What a command did: the decision's outcome and the state after it.
public struct CommandResult: Sendable {
    public let outcome: Outcome
    public let state: OrderState
}

/// One order's single point of decision. Commands run one at a time, in
/// arrival order: decide on the current state, append the events, and only
/// then move the state forward, so the state never runs ahead of the log.
actor Transactor {
    let orderID: ClientID
    private let log: EventLog
    private let catalog: Catalog
    private let config: EngineConfig
    private let clock: @Sendable () -> Int64
    private let logger: Logger

    private var state: OrderState
    private var loaded = false
    private var checkpointVersion: Int64 = 0
    /// The timer the `deadlines` table holds for this order, as far as known.
    private var storedDeadline: Int64?
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(orderID: ClientID, log: EventLog, catalog: Catalog, config: EngineConfig, clock: @escaping @Sendable () -> Int64, logger: Logger) {
        self.orderID = orderID
        self.log = log
        self.catalog = catalog
        self.config = config
        self.clock = clock
        self.state = OrderState(orderID: orderID)
        var logger = logger
        logger[metadataKey: "order"] = "\(orderID)"
        self.logger = logger
    }

    /// Runs one command. The result is returned once its events are durable.
    func handle(_ command: OrderCommand) async throws -> Result<CommandResult, DomainError> {
        await acquire()
        defer { release() }
        try await loadIfNeeded()
        if command == .expireHeldPayments {
            // The timer row fired, so it exists whatever memory says: make the
            // append below rewrite or clear it, or it would fire forever.
            storedDeadline = -1
        }
        let context = DecideContext(nowMs: clock(), catalog: catalog, holdTimeoutMs: config.holdTimeoutMs)
        switch OrderDecider.decide(command, state: state, context: context) {
        case .failure(let error):
            return .failure(error)
        case .success(let decision):
            let next = OrderDecider.fold(state, decision.events)
            try await persist(decision.events, next: next)
            state = next
            return .success(CommandResult(outcome: decision.outcome, state: next))
        }
    }

    /// The current state, after every command that arrived before this call.
    func current() async throws -> OrderState {
        await acquire()
        defer { release() }
        try await loadIfNeeded()
        return state
    }

    /// Writes a checkpoint if events arrived since the last one. Called once
    /// the directory has removed this transactor, so no command can follow.
    func passivate() async {
        await acquire()
        defer { release() }
        guard loaded, state.version > checkpointVersion else { return }
        do {
            _ = try await log.append(AppendRequest(events: [], checkpoint: checkpoint(of: state)))
            checkpointVersion = state.version
        } catch {
            // The log still holds every event; the next activation replays them.
            logger.warning("checkpoint on passivation failed", metadata: ["error": "\(error)"])
        }
    }

    private func persist(_ events: [OrderEvent], next: OrderState) async throws {
        let deadline = next.nextHoldDeadlineMs
        let deadlineChange: DeadlineChange? = deadline == storedDeadline ? nil : (deadline.map { .set($0) } ?? .clear)
        guard !events.isEmpty || deadlineChange != nil else { return }
        var version = state.version
        let records = events.map { event -> NewEvent in
            version += 1
            return NewEvent(orderID: orderID.rawValue, version: version, type: event.typeName, payload: event.payloadJSON())
        }
        let wantsCheckpoint = !events.isEmpty && next.version - checkpointVersion >= config.checkpointEveryEvents
        let request = AppendRequest(
            events: records,
            checkpoint: wantsCheckpoint ? checkpoint(of: next) : nil,
            deadline: deadlineChange.map { (orderID.rawValue, $0) })
        do {
            _ = try await log.append(request)
        } catch {
            // Whether the commit reached the disk is unknown: reload from the
            // log before the next command rather than trust memory.
            loaded = false
            throw error
        }
        if wantsCheckpoint { checkpointVersion = next.version }
        storedDeadline = deadline
    }

    private func checkpoint(of state: OrderState) -> Checkpoint {
        Checkpoint(orderID: orderID.rawValue, version: state.version, state: state.snapshotJSON())
    }

    /// Activation: newest checkpoint plus the events after it.
    private func loadIfNeeded() async throws {
        guard !loaded else { return }
        let (checkpoint, records) = try await log.load(orderID: orderID.rawValue)
        var state = OrderState(orderID: orderID)
        if let checkpoint {
            state = try OrderState.fromSnapshot(checkpoint.state)
        }
        for record in records where record.version == state.version + 1 {
            let event = try OrderEvent.decode(typeName: record.type, payload: record.payload)
            state = OrderDecider.evolve(state, event)
        }
        self.state = state
        self.checkpointVersion = checkpoint?.version ?? 0
        self.storedDeadline = state.nextHoldDeadlineMs
        self.loaded = true
    }

    // Commands are serialized by hand: an actor lets another call in while
    // one awaits the log, and decide must always see the state after the
    // previous command's events.
    private func acquire() async {
        if !busy {
            busy = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    private func release() {
        if waiters.isEmpty {
            busy = false
        } else {
            waiters.removeFirst().resume()
        }
    }
}
