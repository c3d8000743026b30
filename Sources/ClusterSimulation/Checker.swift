import HashRing
import LogStorage
import OrderDomain
import Replication
import Wire

/// The checks after a run, over the history of client calls and every
/// node's log once the faults healed and the cluster went quiet:
///
/// - nothing acknowledged is lost: an acknowledged order exists as placed,
///   an acknowledged payment is there, an acknowledged cancel left the
///   order cancelled with its money back, an acknowledged shipment left it
///   shipped and paid in full;
/// - consistent mode: each order's history is linearizable, and no log
///   holds two events at one (order, version);
/// - available mode: conflicts only where clients really disagreed;
/// - every replica of an order folds it to the same state, and every copy
///   of a log equals the origin's own log at that offset;
/// - a held payment whose order never came is refunded within the hold
///   timeout plus a bound;
/// - every order took a write again after the heal (the probes).
struct Checker {
    let cluster: SimCluster
    let history: History
    let probes: [ClientID: ClientAnswer]
    /// When faults were in force (see `Faults.windows`).
    let faultWindows: [(startNs: Int64, endNs: Int64)]
    /// Most violations reported per kind (a broken invariant breaks often).
    static let reportsPerKindMax = 3

    private var config: SimulationConfig { cluster.config }

    func check() -> (violations: [String], undecided: Int) {
        var report = Report()
        let images = Dictionary(uniqueKeysWithValues: cluster.nodes.map { ($0.id, $0.life?.store.image ?? $0.disk ?? LogImage()) })
        let ring = HashRing(nodes: Dictionary(uniqueKeysWithValues: cluster.ids.map { ($0, 1) }))
        // A node whose fsync failed takes no write, copies included, until it
        // restarts: its log stands still, so it is left out of convergence.
        let stalled = Set(cluster.nodes.filter { $0.life?.store.hasFailed == true }.map(\.id))
        checkCopies(images, &report)
        for order in history.orders {
            let replicas = ring.preferenceList(for: order.rawValue, count: config.replicationFactor)
            var finals: [(node: String, state: OrderState)] = []
            for replica in replicas {
                guard let image = images[replica] else { continue }
                let events = image.events(of: order.rawValue)
                if config.mode == .consistent { checkOneEventPerVersion(order, replica, events, &report) }
                guard !stalled.contains(replica) else { continue }
                do {
                    let stream = try events.map { try $0.streamEvent() }
                    finals.append((replica, OrderMerge.fold(OrderState(orderID: order), stream)))
                } catch {
                    report.add("unreadable", "\(replica) cannot fold \(order): \(error)")
                }
            }
            let views = Set(finals.map { OrderView($0.state) })
            if views.count > 1 {
                let positions = finals.map { final in
                    let copied = images[final.node]?.positions.sorted { $0.key < $1.key }.map { "\($0.key)@\($0.value)" } ?? []
                    return "\(final.node) copied \(copied.joined(separator: ", "))"
                }
                report.add(
                    "diverged", "the replicas of \(order) disagree: " + finals.map { "\($0.node) shows \(OrderView($0.state))" }.joined(separator: "; ")
                        + " (" + positions.joined(separator: "; ") + ")")
            }
            guard let final = finals.first?.state else { continue }
            checkAcknowledged(order, final, &report)
            checkHeldPayments(order, final, images[finals[0].node]!, &report)
            if config.mode == .consistent, !final.conflicts.isEmpty {
                report.add("conflict", "\(order) has conflicts \(final.conflicts.map(\.code)) in consistent mode: two nodes decided on it")
            }
            if config.mode == .available { checkConflictsAreReal(order, final, &report) }
            checkMoney(order, final, &report)
            if let answer = probes[order], case .unknown(let reason) = answer {
                report.add("liveness", "\(order) was not answered, or took no write, in the \(Double(config.operatorRestartMs - config.quietEndMs) / 1000) s after the heal and the quiet period (last answer: \(reason))")
            }
        }
        if config.mode == .consistent {
            for order in history.orders {
                let check = LinearizabilityCheck(
                    orderID: order, operations: history.operations(of: order), holdTimeoutMs: config.holdTimeoutMs,
                    skewToleranceMs: config.faults.contains(.skew) ? 6_000 : 0)
                switch check.check() {
                case .linearizable: break
                case .undecided: report.undecided += 1
                case .violation:
                    let calls = history.operations(of: order).map { operation in
                        "    \(Trace.format(operation.invokeNs, ""))-\(operation.completeNs.map { Trace.format($0, "") } ?? "never") client \(operation.client) via \(operation.node): \(operation.call.summary) -> \(operation.answer?.summary ?? "no answer")"
                    }
                    report.add("linearizability", "the history of \(order) is not linearizable:\n" + calls.joined(separator: "\n"))
                }
            }
        }
        return (report.lines, report.undecided)
    }

    // MARK: Logs

    /// One event per (order, version) in every log, once the events a
    /// newer term overrules are left out (as every fold leaves them out).
    private func checkOneEventPerVersion(_ order: ClientID, _ node: String, _ events: [EventRecord], _ report: inout Report) {
        let stream = events.compactMap { try? $0.streamEvent() }
        let superseded = OrderMerge.superseded(base: OrderState(orderID: order), stream)
        var byVersion: [Int64: EventRecord] = [:]
        for event in events where !superseded.contains(event.eventID) {
            if let other = byVersion[event.version], other.eventID != event.eventID {
                report.add(
                    "two-events",
                    "\(node)'s log holds two events at version \(event.version) of \(order): \(other.type) from \(other.origin)@\(other.offset) (term \(other.term)) and \(event.type) from \(event.origin)@\(event.offset) (term \(event.term))")
                return
            }
            byVersion[event.version] = event
        }
    }

    /// Every copy of an origin's event equals the event in the origin's own
    /// log at that offset.
    private func checkCopies(_ images: [String: LogImage], _ report: inout Report) {
        for holder in cluster.ids {
            guard let image = images[holder] else { continue }
            for (origin, events) in image.events.sorted(by: { $0.key < $1.key }) where origin != holder {
                guard let own = images[origin] else { continue }
                for offset in events.keys.sorted() {
                    let copy = events[offset]!
                    let original = own.event(origin: origin, offset: offset)
                    guard original?.eventID != copy.eventID || original?.checksum != copy.checksum else { continue }
                    // A node that left before it recovered its log (its disk
                    // was replaced) never writes again: its peers' copies are
                    // all that is left of it, and nothing reuses the offset.
                    if original == nil && cluster.node(origin).departed { continue }
                    let what = original.map { "\($0.type) of \($0.orderID) (\($0.eventID))" } ?? "nothing"
                    report.add(
                        "log-identity", "\(holder)'s copy of \(origin)'s log at offset \(offset) is \(copy.type) of \(copy.orderID) (\(copy.eventID)); \(origin)'s log holds \(what) there")
                    break
                }
            }
        }
    }

    // MARK: Acknowledged effects

    private func checkAcknowledged(_ order: ClientID, _ final: OrderState, _ report: inout Report) {
        for operation in history.operations(of: order) {
            guard case .ok(let outcome, _)? = operation.answer, case .command(let command) = operation.call,
                let (kind, line) = AckedEffect.missing(command, outcome: outcome, order: order, in: final, mode: config.mode)
            else { continue }
            if lostWithMinority(operation, order: order) { continue }
            report.add(kind, line + "; the logs hold: " + logs(of: order))
        }
    }

    /// What each node's log holds of an order, for a report.
    private func logs(of order: ClientID) -> String {
        cluster.nodes.map { node in
            let events = (node.life?.store.image ?? node.disk)?.events(of: order.rawValue) ?? []
            return "\(node.id): [" + events.map { "\($0.type) v\($0.version) \($0.origin)@\($0.offset) t\($0.term)" }.joined(separator: ", ") + "]"
        }.joined(separator: "; ")
    }

    /// Available mode promises less for a write acknowledged while fewer
    /// than a majority of its replicas held it (the leader cut off, or
    /// alone): it is lost with the disks of those that held it (README,
    /// *What a 2xx means*). True when that is what happened: a minority
    /// held it when the client got the answer, and one of them lost its
    /// disk later, or a node lost its disk while the answer was on its way
    /// (the node that wrote it, alone).
    private func lostWithMinority(_ operation: History.Operation, order: ClientID) -> Bool {
        guard let holders = operation.holders, let completeNs = operation.completeNs else { return false }
        let ring = HashRing(nodes: Dictionary(uniqueKeysWithValues: cluster.ids.map { ($0, 1) }))
        let replicas = ring.preferenceList(for: order.rawValue, count: config.replicationFactor)
        guard holders.intersection(replicas).count < replicas.count / 2 + 1 else { return false }
        return cluster.diskLosses.contains { loss in
            loss.atNs >= operation.invokeNs && (holders.contains(loss.node) || loss.atNs <= completeNs)
        }
    }

    /// A payment acknowledged as held for an order nobody placed is
    /// refunded, within the hold timeout plus the bound.
    private func checkHeldPayments(_ order: ClientID, _ final: OrderState, _ image: LogImage, _ report: inout Report) {
        guard !history.placeSent.contains(order) else { return }
        let refunds = image.events(of: order.rawValue).filter { $0.type == "PaymentRefunded" }
        for operation in history.operations(of: order) {
            guard case .ok(.held?, _)? = operation.answer, case .command(.pay(let id, _)) = operation.call,
                operation.invokeNs < config.workloadEndNs
            else { continue }
            if lostWithMinority(operation, order: order) { continue }
            guard final.payment(id)?.status == .refunded else {
                report.add("money", "payment \(id) of \(order), which never came, is not refunded: \(OrderView(final))")
                continue
            }
            // Due at the end of the hold; a fault in force then (the leader
            // down, paused or cut off) holds the timer up until it ends.
            let boundNs = config.refundBoundMs * 1_000_000
            let dueNs = operation.invokeNs + config.holdTimeoutMs * 1_000_000
            var readyNs = dueNs
            var moved = true
            while moved {
                moved = false
                for window in faultWindows where window.startNs <= readyNs + boundNs && window.endNs > readyNs {
                    readyNs = window.endNs
                    moved = true
                }
            }
            let skew: Int64 = config.faults.contains(.skew) ? 3_000 : 0
            let latestMs: Int64 = cluster.world.epochWallMs + (readyNs + boundNs) / 1_000_000 + skew
            // The first time the refund was recorded: a leader that later
            // answers from it writes the same fact again in its own term
            // (`Transactor.anchorHead`), recorded then.
            let recorded = refunds.filter { $0.payload.contains("\"\(id)\"") }.min { $0.recordedAt < $1.recordedAt }
            if let refund = recorded, refund.recordedAt > latestMs {
                report.add("money", "payment \(id) of \(order) was refunded \(refund.recordedAt - latestMs) ms later than the hold timeout plus \(config.refundBoundMs) ms (after the faults then in force)")
            }
        }
    }

    /// Every payment is counted once: what the order keeps of it plus what
    /// went back is what was paid.
    private func checkMoney(_ order: ClientID, _ final: OrderState, _ report: inout Report) {
        for payment in final.payments where payment.status != .held && payment.appliedCents + payment.refundedCents != payment.amountCents {
            report.add("money", "payment \(payment.id) of \(order) is \(payment.amountCents) but \(payment.appliedCents) kept and \(payment.refundedCents) refunded")
        }
    }

    /// Available mode: a conflict needs clients that disagreed.
    private func checkConflictsAreReal(_ order: ClientID, _ final: OrderState, _ report: inout Report) {
        guard !final.conflicts.isEmpty else { return }
        var places: Set<String> = []
        var amounts: [ClientID: Set<Cents>] = [:]
        var shipments: Set<ClientID> = []
        var cancels = 0
        var firstPaidNs: Int64?
        var lastPlacedNs: Int64?
        for operation in history.operations(of: order) {
            guard case .command(let command) = operation.call else { continue }
            switch command {
            case .place(let customer, let lines):
                places.insert("\(customer)\(lines)")
                lastPlacedNs = max(lastPlacedNs ?? .min, operation.invokeNs)
            case .pay(let id, let amount):
                amounts[id, default: []].insert(amount)
                firstPaidNs = min(firstPaidNs ?? .max, operation.invokeNs)
            case .ship(let id): shipments.insert(id)
            case .cancel: cancels += 1
            case .expireHeldPayments: break
            }
        }
        // A held payment's timer on one side of a partition (its order not
        // there) against the order placed on the other: they disagree too.
        let skewNs: Int64 = config.faults.contains(.skew) ? 6_000_000_000 : 0
        let timerAgainstPlace = firstPaidNs.flatMap { paid in lastPlacedNs.map { $0 + skewNs >= paid + config.holdTimeoutMs * 1_000_000 } } ?? false
        let twoPlaces = places.count > 1
        let twoAmounts = amounts.values.contains { $0.count > 1 }
        let twoShipments = shipments.count > 1
        let cancelAgainst = cancels > 0 && (!shipments.isEmpty || !amounts.isEmpty)
        let disagreed = twoPlaces || twoAmounts || twoShipments || cancelAgainst || timerAgainstPlace
        if !disagreed {
            report.add("conflict", "\(order) has conflicts \(final.conflicts.map(\.code)) that no two clients' commands explain")
        }
    }

    struct Report {
        var lines: [String] = []
        var counts: [String: Int] = [:]
        var undecided = 0

        mutating func add(_ kind: String, _ line: String) {
            counts[kind, default: 0] += 1
            if counts[kind]! <= Checker.reportsPerKindMax { lines.append("[\(kind)] \(line)") }
        }
    }
}

/// What a client's acknowledged command promises to leave in its order's
/// state, and whether a state shows it.
enum AckedEffect {
    /// The violation (kind, line) when `state` does not show the effect of
    /// an acknowledged `command`; nil when it does.
    static func missing(_ command: OrderCommand, outcome: Outcome?, order: ClientID, in final: OrderState, mode: PartitionMode) -> (String, String)? {
        switch command {
        case .place(let customer, let lines):
            if !final.exists {
                return ("lost", "\(order) was acknowledged as placed (\(outcome.map { "\($0)" } ?? "")) and is gone: \(OrderView(final))")
            } else if mode == .consistent, final.customer != customer || final.lines.map({ OrderLineRequest(sku: $0.sku, qty: $0.qty) }) != lines {
                return ("overruled", "\(order) was acknowledged with other lines than it holds")
            }
        case .pay(let id, let amount):
            guard let payment = final.payment(id) else {
                return ("lost", "payment \(id) of \(order) was acknowledged and is gone: \(OrderView(final))")
            }
            if payment.amountCents != amount && mode == .consistent {
                return ("overruled", "payment \(id) of \(order) was acknowledged for \(amount) and holds \(payment.amountCents)")
            }
        case .cancel:
            let cancelled = final.status == .cancelled && final.paidCents == 0
            let lostToShipment = mode == .available && final.status == .shipped && final.conflicts.contains { $0.code == "shipped_and_cancelled" }
            if !cancelled && !lostToShipment {
                return ("overruled", "\(order) was acknowledged as cancelled and is \(OrderView(final))")
            }
        case .ship(let id):
            // Paid in full, unless (available mode) the two sides of a
            // partition disagreed on the money and said so.
            let underpaid = mode == .available && final.conflicts.contains { $0.code == "underpaid" }
            let shipped = final.status == .shipped && final.shipmentID == id && (final.paidCents >= final.totalCents || underpaid)
            if !shipped {
                return ("overruled", "\(order) was acknowledged as shipped (\(id)) and is \(OrderView(final))")
            }
        case .expireHeldPayments:
            return nil
        }
        return nil
    }
}

extension SimCluster {
    /// Available mode, an acknowledged command: the nodes whose log shows
    /// its effect now. nil otherwise (consistent mode promises the same
    /// for every acknowledged write).
    func holders(of answer: ClientAnswer, to call: ForwardedCall, order: ClientID) -> Set<String>? {
        guard config.mode == .available, case .ok(let outcome, _) = answer, case .command(let command) = call else { return nil }
        var holders: Set<String> = []
        for node in nodes {
            guard let image = node.life?.store.image ?? node.disk else { continue }
            guard let stream = try? image.events(of: order.rawValue).map({ try $0.streamEvent() }) else { continue }
            let state = OrderMerge.fold(OrderState(orderID: order), stream)
            if AckedEffect.missing(command, outcome: outcome, order: order, in: state, mode: config.mode) == nil { holders.insert(node.id) }
        }
        return holders
    }
}
