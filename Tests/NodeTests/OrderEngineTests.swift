import EventLog
import LogStorage
import Foundation
import OrderDomain
import Synchronization
import TestSupport
import Testing

@testable import Node

@Suite struct OrderEngineTests {
    func makeEngine(_ folder: borrowing TemporaryFolder, clock: ManualClock = ManualClock(), configure: (inout EngineConfig) -> Void = { _ in }) throws -> OrderEngine {
        let log = try EventLog.open(data: folder.path, node: "api-1")
        var config = EngineConfig(nodeID: "api-1")
        configure(&config)
        return OrderEngine(log: log, catalog: .standard, config: config, clock: clock)
    }

    @Test func commandsRacingPassivationAreNeitherLostNorRunTwice() async throws {
        let folder = try TemporaryFolder()
        // Every passivation writes a checkpoint, racing the commands too.
        let engine = try makeEngine(folder) { $0.passivationCheckpointEvents = 1 }
        let orders = (0..<4).map { id("race-\($0)") }
        for order in orders {
            let placed = try await engine.execute(order, .place(customer: "c", lines: [OrderLineRequest(sku: someSKU, qty: 10_000)]))
            #expect(placed.value?.outcome == .created)
        }
        // Passivate everything idle, continuously, while payments stream in:
        // every command lands on a transactor that may be retiring.
        let sweeping = Task {
            while !Task.isCancelled {
                await engine.passivateIdle(olderThan: .zero)
                await Task.yield()
            }
        }
        let paymentsPerClient = 40
        let outcomes = try await withThrowingTaskGroup(of: [Outcome].self) { group in
            for client in 0..<8 {
                group.addTask {
                    var outcomes: [Outcome] = []
                    for index in 0..<paymentsPerClient {
                        let order = orders[(client + index) % orders.count]
                        let result = try await engine.execute(order, .pay(paymentID: id("p-\(client)-\(index)"), amountCents: 1))
                        outcomes.append(try result.get().outcome)
                    }
                    return outcomes
                }
            }
            var all: [Outcome] = []
            for try await part in group { all += part }
            return all
        }
        sweeping.cancel()
        _ = await sweeping.value

        #expect(outcomes.count == 8 * paymentsPerClient)
        #expect(outcomes.allSatisfy { $0 == .created })
        var payments = 0
        for order in orders {
            let records = try await engine.log.events(orderID: order.rawValue, afterVersion: 0)
            #expect(records.map(\.version) == Array(1...Int64(records.count)), "versions of \(order) are dense and unique")
            let ids = records.filter { $0.type == "PaymentReceived" }.map(\.payload)
            #expect(Set(ids).count == ids.count, "no payment of \(order) was written twice")
            payments += ids.count
            let state = try await engine.state(of: order)
            #expect(state.paidCents == Int64(ids.count))
        }
        #expect(payments == 8 * paymentsPerClient)
        await engine.shutdown()
    }

    @Test func aRepeatAfterPassivationIsStillRecognised() async throws {
        let folder = try TemporaryFolder()
        let engine = try makeEngine(folder)
        let order = id("o-1")
        _ = try await engine.execute(order, .place(customer: "c", lines: [OrderLineRequest(sku: someSKU, qty: 1)]))
        _ = try await engine.execute(order, .pay(paymentID: id("p-1"), amountCents: 5))
        await engine.passivateIdle(olderThan: .zero)
        #expect(await engine.activeTransactors == 0)
        let again = try await engine.execute(order, .pay(paymentID: id("p-1"), amountCents: 5))
        #expect(again.value?.outcome == .replayed)
        let conflicting = try await engine.execute(order, .pay(paymentID: id("p-1"), amountCents: 6))
        guard case .failure(.conflict(let code, _)) = conflicting else {
            Issue.record("a different amount under the same payment id must conflict, got \(conflicting)")
            return
        }
        #expect(code == "payment_id_reused")
        #expect(try await (engine.log as! EventLog).lastOffset() == 2)
        await engine.shutdown()
    }

    @Test func stateIsRebuiltFromCheckpointPlusTailAfterRestart() async throws {
        let folder = try TemporaryFolder()
        let order = id("o-1")
        var before: OrderState?
        do {
            let engine = try makeEngine(folder) { $0.checkpointEveryEvents = 3 }
            _ = try await engine.execute(order, .place(customer: "c", lines: [OrderLineRequest(sku: someSKU, qty: 2)]))
            for index in 0..<7 {
                _ = try await engine.execute(order, .pay(paymentID: id("p-\(index)"), amountCents: 1))
            }
            before = try await engine.state(of: order)
            // No shutdown: as after a crash, the checkpoint may trail the log.
            engine.log.close()
        }
        let checkpoint = try await EventLog.openReadOnly(path: EventLog.path(data: folder.path, node: "api-1")).checkpoint(orderID: order.rawValue)
        #expect(checkpoint?.version == 6)
        let engine = try makeEngine(folder)
        let after = try await engine.state(of: order)
        #expect(after == before)
        #expect(after.version == 8)
        await engine.shutdown()
    }

    /// Another node's event of an order, copied here while this node's
    /// transactor holds the order in memory (before the copy hook makes it
    /// reload): a checkpoint written from that memory must not hide the
    /// copy. (Before, the next command's checkpoint covered the copy's
    /// version, and every later load on this node skipped the copy.)
    @Test func aCheckpointNeverHidesACopyStoredAfterTheStateWasLoaded() async throws {
        let folder = try TemporaryFolder()
        let order = id("o-1")
        let place = OrderCommand.place(customer: "c", lines: [OrderLineRequest(sku: someSKU, qty: 2)])
        // The other side of a partition (available mode) took payment p-b.
        let otherLog = try EventLog.open(data: folder.path, node: "api-2")
        let other = OrderEngine(log: otherLog, catalog: .standard, config: EngineConfig(nodeID: "api-2"), clock: ManualClock())
        _ = try await other.execute(order, place)
        _ = try await other.execute(order, .pay(paymentID: id("p-b"), amountCents: 1))
        let copies = try await otherLog.events(orderID: order.rawValue, afterVersion: 0)
        await other.shutdown()

        do {
            let engine = try makeEngine(folder) { $0.checkpointEveryEvents = 1 }
            _ = try await engine.execute(order, place)
            _ = try await engine.execute(order, .pay(paymentID: id("p-a"), amountCents: 1))
            _ = try await engine.log.replicate(ReplicatedBatch(origin: "api-2", events: copies, throughOffset: copies.last!.offset))
            _ = try await engine.execute(order, .pay(paymentID: id("p-c"), amountCents: 1))
            engine.log.close()
        }
        let engine = try makeEngine(folder)
        let state = try await engine.state(of: order)
        #expect(state.payment(id("p-b")) != nil, "the copied payment is folded after a restart: \(state.payments.map(\.id))")
        #expect(state.payment(id("p-a")) != nil && state.payment(id("p-c")) != nil)
        await engine.shutdown()
    }

    /// Passivation checkpoints an order once enough of its events came
    /// since its last checkpoint; an order with fewer is read back whole
    /// from its events.
    @Test func passivationCheckpointsAnOrderWithEnoughEventsSinceItsLastCheckpoint() async throws {
        let folder = try TemporaryFolder()
        let engine = try makeEngine(folder) { $0.passivationCheckpointEvents = 3 }
        let few = id("o-few")
        let many = id("o-many")
        for order in [few, many] {
            _ = try await engine.execute(order, .place(customer: "c", lines: [OrderLineRequest(sku: someSKU, qty: 2)]))
            _ = try await engine.execute(order, .pay(paymentID: id("p-1"), amountCents: 1))
        }
        _ = try await engine.execute(many, .pay(paymentID: id("p-2"), amountCents: 1))
        await engine.passivateIdle(olderThan: .zero)
        #expect(await engine.activeTransactors == 0)
        #expect(try await engine.log.checkpoint(orderID: few.rawValue) == nil, "two events since none: no checkpoint")
        #expect(try await engine.log.checkpoint(orderID: many.rawValue)?.version == 3)
        // Both read back whole after passivation, and again after a restart.
        #expect(try await engine.state(of: few).paidCents == 1)
        #expect(try await engine.state(of: many).paidCents == 2)
        await engine.shutdown()
        let again = try makeEngine(folder) { $0.passivationCheckpointEvents = 3 }
        #expect(try await again.state(of: few).paidCents == 1)
        #expect(try await again.state(of: many).paidCents == 2)
        await again.shutdown()
    }

    /// Replication that grants and confirms everything, at once: each fake
    /// below changes what its test is about.
    class AgreeingReplication: ReplicationCoordinator, @unchecked Sendable {
        func admit(_ orderID: ClientID) throws {}
        func term(for orderID: ClientID, above floor: Term) async throws -> Term? { Term(number: floor.number + 1, leader: "api-1") }
        func gather(_ orderID: ClientID, term: Term?) async throws -> Bool { false }
        func awaitReplicas(_ orderID: ClientID, through offset: Int64, term: Term?) async throws {}
        func confirmLeadership(_ orderID: ClientID, term: Term?) throws {}
        func confirmRead(_ orderID: ClientID, term: Term?) async throws {}
        func checkLeadership(_ orderID: ClientID) throws {}
        func commitCheck(_ orderID: ClientID, term: Term?) -> CommitCheck? { nil }
        func holds(_ term: Term?, for orderID: ClientID) -> Bool { true }
        func leads(_ orderID: ClientID) -> Bool { true }
        var epoch: UInt64 { 1 }
    }

    /// Terms by the view: before it moves, the order's list grants term
    /// 23; after, another list holds term 15 and grants a newer one only
    /// when asked above a floor (as `Replicator.term(for:above:)` does).
    final class TermsByView: AgreeingReplication, @unchecked Sendable {
        let view = Mutex<UInt64>(1)
        override func term(for orderID: ClientID, above floor: Term) async throws -> Term? {
            let held: Int64 = view.withLock { $0 } == 1 ? 23 : 15
            return Term(number: max(held, floor.number + 1), leader: "api-1")
        }
        override var epoch: UInt64 { view.withLock { $0 } }
    }

    /// Grants `api-1` the term `grant` holds (or a newer one when asked
    /// above a floor); setting it moves the view.
    final class GrantedTerm: AgreeingReplication, @unchecked Sendable {
        let state = Mutex<(number: Int64, epoch: UInt64)>((6, 1))
        func grant(_ number: Int64) { state.withLock { $0 = (number, $0.epoch + 1) } }
        override func term(for orderID: ClientID, above floor: Term) async throws -> Term? {
            Term(number: max(state.withLock { $0.number }, floor.number + 1), leader: "api-1")
        }
        override func holds(_ term: Term?, for orderID: ClientID) -> Bool { term?.number == state.withLock { $0.number } }
        override var epoch: UInt64 { state.withLock { $0.epoch } }
    }

    /// Seed 98425 (`--customers-per-second 60 --faults restore,upgrade,
    /// crash,partition,disk,oneway,bridge`, a release build of 835ec24):
    /// `api-1` placed an order in term 6, unacknowledged. Leading it again in
    /// term 28, it answered the client's retry as a repeat, from the
    /// placement its replicas held, and wrote nothing. `api-2`, a leader of
    /// term 23 deposed and cut off, then stored a held payment at version 1;
    /// every fold kept the newer-numbered event there, and the acknowledged
    /// order read as absent. An answer from an older term's event now first
    /// writes that event again in the leader's own term.
    @Test func anAnswerFromAnOlderTermsEventWritesItAgainInThisTermSoADeposedWriteThereLoses() async throws {
        let folder = try TemporaryFolder()
        let log = try EventLog.open(data: folder.path, node: "api-1")
        let terms = GrantedTerm()
        let engine = OrderEngine(log: log, catalog: .standard, config: EngineConfig(nodeID: "api-1"), replication: terms, clock: ManualClock())
        let order = id("o-94")
        let place = OrderCommand.place(customer: "c", lines: [OrderLineRequest(sku: someSKU, qty: 1)])
        #expect(try await engine.execute(order, place).value?.outcome == .created)
        terms.grant(28)
        #expect(try await engine.execute(order, place).value?.outcome == .replayed)
        // The deposed leader's write reaches this log after the answer.
        let deposed = OrderEvent.paymentReceived(paymentID: id("p-94-1"), amountCents: 500, heldUntilMs: 60_000)
        _ = try await log.replicate(ReplicatedBatch(origin: "api-2", events: [
            EventRecord(
                origin: "api-2", offset: 1, orderID: order.rawValue, version: 1, type: deposed.typeName, payload: deposed.payloadJSON(),
                eventID: EventID.make(prefix: "api-2-beef-", offset: 1), recordedAt: 1, term: 23)
        ], throughOffset: 1))
        let stream = try await log.events(orderID: order.rawValue, afterVersion: 0).map { try $0.streamEvent() }
        #expect(stream.map(\.term.number).sorted() == [6, 23, 28])
        let folded = OrderMerge.fold(OrderState(orderID: order), stream)
        #expect(folded.status == .placed, "every node's fold keeps the acknowledged placement")
        #expect(folded.payments.isEmpty)
        #expect(folded.version == 1)
        terms.grant(29)
        #expect(try await engine.state(of: order).status == .placed)
        await engine.shutdown()
    }

    /// Seed 99 (`--nodes 4 --faults churn,upgrade,crash,disk,restore,
    /// partition,messages`, a release build of 496a76b): a passivated
    /// order's checkpoint kept no term, so once the ring changed its leader
    /// wrote a shipment in a lower-numbered term than the payments before
    /// it, and every fold of the log leaves such an event out: the
    /// acknowledged shipment was overruled.
    @Test func aCheckpointKeepsTheTermSoALaterWriteIsInANewerOne() async throws {
        let folder = try TemporaryFolder()
        let log = try EventLog.open(data: folder.path, node: "api-1")
        let terms = TermsByView()
        var config = EngineConfig(nodeID: "api-1")
        config.passivationCheckpointEvents = 1
        let engine = OrderEngine(log: log, catalog: .standard, config: config, replication: terms, clock: ManualClock())
        let order = id("o-83")
        _ = try await engine.execute(order, .place(customer: "c", lines: [OrderLineRequest(sku: someSKU, qty: 1)]))
        #expect(try await engine.execute(order, .pay(paymentID: id("p-1"), amountCents: someSKUPrice)).value?.state.status == .paid)
        await engine.passivateIdle(olderThan: .zero)
        #expect(try await log.checkpoint(orderID: order.rawValue) != nil)

        terms.view.withLock { $0 = 2 }
        let shipped = try await engine.execute(order, .ship(shipmentID: id("wms-o-83")))
        #expect(shipped.value?.state.status == .shipped)
        let records = try await log.events(orderID: order.rawValue, afterVersion: 0)
        #expect(records.count == 4)
        let payments = records.filter { $0.type != "OrderShipped" }.map(\.term)
        let shipment = try #require(records.first { $0.type == "OrderShipped" })
        #expect(payments.allSatisfy { shipment.term > $0 }, "shipped in term \(shipment.term) after events in terms \(payments)")
        // What every node folds from the log is what the client was told.
        let stream = try records.map { try $0.streamEvent() }
        let folded = OrderMerge.fold(OrderState(orderID: order), stream)
        #expect(folded.status == .shipped)
        // The first event of the new term names the term it went on from
        // (kept through the checkpoint), so a fold follows the newest term's
        // events down (OrderMerge.superseded); the others follow their own.
        let paidTerm = Term(number: 23, leader: "api-1")
        #expect(stream.map(\.after) == [nil, nil, nil, paidTerm])
        #expect(stream.dropLast().allSatisfy { $0.term == paidTerm })
        await engine.shutdown()
    }

    @Test func aHeldPaymentIsRefundedByItsTimerEvenAfterARestart() async throws {
        let folder = try TemporaryFolder()
        let clock = ManualClock()
        let order = id("late-order")
        do {
            let engine = try makeEngine(folder, clock: clock) { $0.holdTimeoutMs = 1000 }
            let held = try await engine.execute(order, .pay(paymentID: id("p-1"), amountCents: 500))
            #expect(held.value?.outcome == .held)
            #expect(try await engine.log.deadlines(limit: 100).map(\.orderID) == [order.rawValue])
            engine.log.close()
        }
        let engine = try makeEngine(folder, clock: clock) { $0.holdTimeoutMs = 1000 }
        await engine.fireDueDeadlines()
        #expect(try await engine.state(of: order).payment(id("p-1"))?.status == .held, "not due yet")
        clock.advance(ms: 1000)
        await engine.fireDueDeadlines()
        let state = try await engine.state(of: order)
        #expect(state.payment(id("p-1"))?.status == .refunded)
        #expect(try await engine.log.deadlines(limit: 100).isEmpty)
        await engine.shutdown()
    }

    /// `api-2`'s log holding a copy of a payment of `order` that `api-1`
    /// held (its order not placed), as a follower copies it, with its timer
    /// (hold timeout 1 s).
    private func copyOfAHeldPayment(of order: ClientID, _ folder: borrowing TemporaryFolder, clock: ManualClock) async throws -> EventLog {
        let first = try makeEngine(folder, clock: clock) { $0.holdTimeoutMs = 1000 }
        _ = try await first.execute(order, .pay(paymentID: id("p-1"), amountCents: 500))
        let written = try await first.log.events(orderID: order.rawValue, afterVersion: 0)
        await first.shutdown()
        let log = try EventLog.open(data: folder.path, node: "api-2")
        _ = try await log.replicate(ReplicatedBatch(origin: "api-1", events: written, throughOffset: written.last!.offset, deadlines: Replicator.heldUntil(written)))
        return log
    }

    private func engineOfTheCopy(_ log: EventLog, replication: (any ReplicationCoordinator)? = nil, clock: ManualClock) -> OrderEngine {
        var config = EngineConfig(nodeID: "api-2")
        config.holdTimeoutMs = 1000
        return OrderEngine(log: log, catalog: .standard, config: config, replication: replication, clock: clock)
    }

    /// The timer of a held payment lives with its copies too: a node that
    /// took the order over (its first leader gone) refunds the payment when
    /// its order never comes. (Before, only the node that wrote the payment
    /// had the timer.)
    @Test func aNodeThatTakesAnOrderOverFiresTheTimersItsCopiesCarry() async throws {
        let folder = try TemporaryFolder()
        let clock = ManualClock()
        let order = id("never-comes")
        let log = try await copyOfAHeldPayment(of: order, folder, clock: clock)
        let second = engineOfTheCopy(log, clock: clock)
        #expect(try await log.deadlines(limit: 10).map(\.orderID) == [order.rawValue])
        clock.advance(ms: 1000)
        await second.fireDueDeadlines()
        let refunds = try await log.events(orderID: order.rawValue, afterVersion: 0).filter { $0.origin == "api-2" }
        #expect(refunds.map(\.type) == ["PaymentRefunded"])
        #expect(try await second.state(of: order).payment(id("p-1"))?.status == .refunded)
        #expect(try await log.deadlines(limit: 10).isEmpty)
        await second.shutdown()
    }

    /// Leads nothing until `lead()`, which moves the view (as a node done
    /// recovering its log does once every live peer has seen it).
    final class LeadsOnceSettled: AgreeingReplication, @unchecked Sendable {
        let state = Mutex<(leads: Bool, epoch: UInt64)>((false, 1))
        func lead() { state.withLock { $0 = (true, $0.epoch + 1) } }
        override func checkLeadership(_ orderID: ClientID) throws {
            guard leads(orderID) else { throw EngineError.unavailable("not the leader") }
        }
        override func holds(_ term: Term?, for orderID: ClientID) -> Bool { leads(orderID) }
        override func leads(_ orderID: ClientID) -> Bool { state.withLock { $0.leads } }
        override var epoch: UInt64 { state.withLock { $0.epoch } }
    }

    /// Seed 93600 (`--customers-per-second 40 --faults restore,upgrade,
    /// crash,partition,disk`, a release build of 44c665f): a node that got
    /// its log back from its peers after a replaced disk scanned its timers
    /// in the moment before it led its orders, so it put off a held
    /// payment's timer, long due, by `timerRecheckMs` as for an order led
    /// elsewhere, and refunded the payment 2 s after it took the order
    /// over: past the bound the simulator checks. Once the view moves, a
    /// timer of an order this node now leads fires at the next scan.
    @Test func aTimerPutOffWhileAnotherNodeLedFiresOnceThisNodeLeads() async throws {
        let folder = try TemporaryFolder()
        let clock = ManualClock()
        let order = id("never-comes")
        let log = try await copyOfAHeldPayment(of: order, folder, clock: clock)
        let replication = LeadsOnceSettled()
        let engine = engineOfTheCopy(log, replication: replication, clock: clock)
        clock.advance(ms: 1000)
        await engine.fireDueDeadlines()
        let putOff = try await log.deadlines(limit: 10)
        #expect(putOff.map(\.dueAt) == [clock.wallMs + engine.config.timerRecheckMs], "led elsewhere: looked at again later")
        replication.lead()
        await engine.fireDueDeadlines()
        #expect(try await engine.state(of: order).payment(id("p-1"))?.status == .refunded, "refunded at the first scan once this node leads")
        #expect(try await log.deadlines(limit: 10).isEmpty)
        // A timer not due yet, fired early by a move of the view, is set
        // again to its end and refunds nothing before it.
        let later = id("comes-later")
        _ = try await engine.execute(later, .pay(paymentID: id("p-2"), amountCents: 500))
        replication.lead()
        await engine.fireDueDeadlines()
        #expect(try await engine.state(of: later).payment(id("p-2"))?.status == .held)
        #expect(try await log.deadlines(limit: 10).map(\.dueAt) == [clock.wallMs + 1000])
        await engine.shutdown()
    }

    @Test func aHeldPaymentIsAppliedWhenItsOrderArrivesAndItsTimerCleared() async throws {
        let folder = try TemporaryFolder()
        let engine = try makeEngine(folder)
        let order = id("o-1")
        _ = try await engine.execute(order, .pay(paymentID: id("p-1"), amountCents: someSKUPrice))
        let placed = try await engine.execute(order, .place(customer: "c", lines: [OrderLineRequest(sku: someSKU, qty: 1)]))
        #expect(placed.value?.state.status == .paid)
        #expect(try await engine.log.deadlines(limit: 100).isEmpty)
        await engine.shutdown()
    }

    /// Confirms every write at once, except those of one order once
    /// `stall()` is called: they wait until `release()`, as a write waits
    /// while its order's replicas are recovering.
    final class StallsOneOrder: AgreeingReplication, @unchecked Sendable {
        let stalled: ClientID
        private let gate = Mutex<(armed: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))
        init(stalling order: ClientID) { stalled = order }
        func stall() { gate.withLock { $0.armed = true } }
        func release() {
            let waiting = gate.withLock { gate in
                defer { gate = (false, []) }
                return gate.waiting
            }
            for continuation in waiting { continuation.resume() }
        }
        var waiting: Int { gate.withLock { $0.waiting.count } }
        override func awaitReplicas(_ orderID: ClientID, through offset: Int64, term: Term?) async throws {
            guard orderID == stalled else { return }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let wait = gate.withLock { gate in
                    if gate.armed { gate.waiting.append(continuation) }
                    return gate.armed
                }
                if !wait { continuation.resume() }
            }
        }
    }

    /// Seed 96047 (`--nodes 5 --acks all --customers-per-second 40 --faults
    /// restore,upgrade,crash,partition,disk`, a release build of b463143):
    /// after the heal, a scan fired its timers one after the other, and two
    /// orders whose replicas were still recovering took about 2 s each to
    /// fail. The held payment of the order after them, due long before, was
    /// refunded 0.5 s past the bound. Timers now fire concurrently: one
    /// that waits holds up none of the others.
    @Test func aTimerWhoseWriteWaitsHoldsUpNoOtherTimer() async throws {
        let folder = try TemporaryFolder()
        let clock = ManualClock()
        let stuck = id("replicas-recovering")
        let other = id("never-comes")
        let replication = StallsOneOrder(stalling: stuck)
        var config = EngineConfig(nodeID: "api-1")
        config.holdTimeoutMs = 1000
        let engine = OrderEngine(log: try EventLog.open(data: folder.path, node: "api-1"), catalog: .standard, config: config, replication: replication, clock: clock)
        _ = try await engine.execute(stuck, .pay(paymentID: id("p-1"), amountCents: 500))
        clock.advance(ms: 10)
        _ = try await engine.execute(other, .pay(paymentID: id("p-2"), amountCents: 700))
        #expect(try await engine.log.deadlines(limit: 10).map(\.orderID) == [stuck.rawValue, other.rawValue], "the stuck order's timer comes first")
        clock.advance(ms: 1000)
        replication.stall()
        let scan = Task { await engine.fireDueDeadlines() }
        try await waitFor("the first timer's write to wait") { replication.waiting == 1 }
        var otherRefunded = true
        do {
            try await waitFor("the other order's payment refunded while the first timer waits", timeout: .seconds(10)) {
                try await engine.state(of: other).payment(id("p-2"))?.status == .refunded
            }
        } catch {
            otherRefunded = false
        }
        #expect(otherRefunded, "a timer whose write waits held up the next one")
        replication.release()
        await scan.value
        #expect(try await engine.state(of: stuck).payment(id("p-1"))?.status == .refunded)
        #expect(try await engine.log.deadlines(limit: 10).isEmpty)
        await engine.shutdown()
    }

    /// A timer that fails (here: its order's stream holds an event this
    /// release cannot read) is tried again later and never keeps the timers
    /// after it from firing.
    @Test func aFailingTimerNeverBlocksTheNextOne() async throws {
        let folder = try TemporaryFolder()
        let clock = ManualClock()
        let engine = try makeEngine(folder, clock: clock) { $0.holdTimeoutMs = 1000 }
        let late = id("late-order")
        _ = try await engine.execute(late, .pay(paymentID: id("p-1"), amountCents: 500))
        // An unreadable order whose timer comes due first.
        let unreadable = EventRecord(
            origin: "api-2", offset: 1, orderID: "broken", version: 1, type: "NoSuchEvent", payload: "{}",
            eventID: EventID.make(prefix: "api-2-f00d-", offset: 1), recordedAt: 1)
        _ = try await engine.log.replicate(ReplicatedBatch(origin: "api-2", events: [unreadable], throughOffset: 1, deadlines: ["broken": 1]))
        #expect(try await engine.log.deadlines(limit: 10).map(\.orderID) == ["broken", late.rawValue])
        clock.advance(ms: 1000)
        await engine.fireDueDeadlines()
        #expect(try await engine.state(of: late).payment(id("p-1"))?.status == .refunded, "the next timer fired")
        #expect(try await engine.log.deadlines(limit: 10).map(\.orderID) == ["broken"], "the failed one waits for the next scan")
        await engine.shutdown()
    }
}
