import OrderDomain
import Wire

/// The simulated clients: the customer flows of `orderly simulate` (place
/// and pay, sometimes paying first or twice, sometimes cancelling, some
/// paying for an order that never comes), a warehouse that ships paid
/// orders, and contested orders that get conflicting commands from
/// different clients through different nodes at the same time (pay against
/// cancel, shipment against cancel, two payments, one payment id with two
/// amounts, a payment racing its order). A call whose answer is unknown
/// (503, timeout) is sent again, to a random node, with backoff.
final class Workload: @unchecked Sendable {
    let cluster: SimCluster
    let history: History
    private var world: SimWorld { cluster.world }
    /// When customers come, and the seed of each one's own draws (so a
    /// customer's choices do not depend on how the others' calls went).
    private let arrivals: RandomStream
    private var nextClient = 0
    /// Products with a price, for the orders' lines.
    private let products: [Product]

    init(cluster: SimCluster, history: History) {
        self.cluster = cluster
        self.history = history
        arrivals = cluster.world.stream("customers")
        products = Array(Catalog.standard.all.prefix(40))
    }

    /// Schedules every customer of the run (from the seed) and the liveness
    /// probes after the heal.
    func start() {
        let config = cluster.config
        let spanNs = max(0, config.workloadEndNs - 1_500_000_000 - config.workloadStartMs * 1_000_000)
        let customers = Int(Double(spanNs) / 1e9 * config.customersPerSecond)
        for index in 0..<customers {
            let at = config.workloadStartMs * 1_000_000 + arrivals.uniform(0...max(0, spanNs))
            let seed = arrivals.next()
            world.at(at) { [self] in
                cluster.clients.fire { [self] in
                    cluster.clients.spawn { await self.customer(index, seed: seed) }
                }
            }
        }
    }

    // MARK: Calls

    private func newClient() -> Int {
        nextClient += 1
        return nextClient
    }

    /// One call through a random node, sent again (to a random node) while
    /// its answer is unknown, at most `attempts` times.
    @discardableResult
    func send(
        _ order: ClientID, _ call: ForwardedCall, client: Int, draws: RandomStream, attempts: Int = 4, until deadlineNs: Int64 = .max
    ) async -> ClientAnswer {
        var backoffNs: Int64 = 100_000_000
        var answer = ClientAnswer.unknown("not sent")
        for attempt in 1...attempts {
            let node = draws.pick(cluster.ids)
            let id = history.invoke(client: client, order: order, node: node, call: call, at: world.nowNs)
            answer = await cluster.call(via: node, order, call, timeout: cluster.config.clientTimeout, draws: draws)
            history.complete(id, answer, at: world.nowNs, holders: cluster.holders(of: answer, to: call, order: order))
            cluster.trace.record(world.nowNs, "client \(client) \(order) \(call.summary) via \(node) -> \(answer.summary)")
            guard case .unknown = answer, attempt < attempts, world.nowNs + backoffNs < deadlineNs else { break }
            await sleep(backoffNs + draws.uniform(0...backoffNs))
            backoffNs *= 2
        }
        return answer
    }

    func sleep(_ ns: Int64) async {
        let world = self.world
        let clients = cluster.clients
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            world.after(ns) { clients.fire { continuation.resume() } }
        }
    }

    private func think(_ draws: RandomStream) async {
        await sleep(draws.uniform(10_000_000...200_000_000))
    }

    // MARK: Flows

    private func lines(_ random: RandomStream) -> (lines: [OrderLineRequest], total: Cents) {
        var lines: [OrderLineRequest] = []
        var total: Cents = 0
        var used: Set<String> = []
        for _ in 0..<(1 + Int(random.next() % 3)) {
            let product = products[Int(random.next() % UInt64(products.count))]
            guard used.insert(product.sku).inserted else { continue }
            let qty = 1 + Int(random.next() % 3)
            lines.append(OrderLineRequest(sku: product.sku, qty: qty))
            total += product.priceCents * Cents(qty)
        }
        return (lines, total)
    }

    private func customer(_ index: Int, seed: UInt64) async {
        let random = RandomStream(seed: seed)
        let order = ClientID("o-\(index)")!
        let (lines, total) = lines(random)
        let place = ForwardedCall.command(.place(customer: "c-\(index)", lines: lines))
        let pay: @Sendable (String, Cents) -> ForwardedCall = { suffix, amount in
            .command(.pay(paymentID: ClientID("p-\(index)-\(suffix)")!, amountCents: amount))
        }
        let client = newClient()
        let flow = random.next() % 100
        switch flow {
        case 0..<45:
            // Place, pay, look; the warehouse ships it.
            guard case .ok = await send(order, place, client: client, draws: random) else { return }
            await think(random)
            guard case .ok(_, let state) = await send(order, pay("1", total), client: client, draws: random), state.status == .paid else { return }
            await think(random)
            await send(order, .read, client: client, draws: random)
            await ship(order, random)
        case 45..<55:
            // Pays before ordering: held, then applied.
            await send(order, pay("1", total), client: client, draws: random)
            await think(random)
            await send(order, place, client: client, draws: random)
            await think(random)
            await send(order, .read, client: client, draws: random)
            await ship(order, random)
        case 55..<63:
            // Pays twice with one payment id (a retry): counted once.
            await send(order, place, client: client, draws: random)
            await send(order, pay("1", total), client: client, draws: random)
            await send(order, pay("1", total), client: client, draws: random)
            await ship(order, random)
        case 63..<70:
            // Cancels, sometimes after paying: the money goes back.
            await send(order, place, client: client, draws: random)
            if random.next() % 2 == 0 { await send(order, pay("1", total), client: client, draws: random) }
            await think(random)
            await send(order, .command(.cancel(reason: "changed my mind")), client: client, draws: random)
            await send(order, .read, client: client, draws: random)
        case 70..<76:
            // Pays for an order that never comes: refunded after the hold.
            await send(order, pay("1", total), client: client, draws: random)
            await sleep(cluster.config.holdTimeoutMs * 1_000_000 + 500_000_000)
            await send(order, .read, client: client, draws: random)
        default:
            await contested(order, random: random, place: place, total: total, pay: pay)
        }
    }

    /// Two clients at once, through different nodes, disagreeing.
    private func contested(
        _ order: ClientID, random: RandomStream, place: ForwardedCall, total: Cents, pay: @Sendable (String, Cents) -> ForwardedCall
    ) async {
        let first = newClient()
        let second = newClient()
        let kind = random.next() % 5
        if kind == 4 {
            // A payment racing its order, from another client.
            let placedDraws = random.fork()
            async let placed: ClientAnswer = send(order, place, client: first, draws: placedDraws)
            let paidDraws = random.fork()
            async let paid: ClientAnswer = send(order, pay("1", total), client: second, draws: paidDraws)
            _ = await (placed, paid)
            await send(order, .read, client: first, draws: random)
            await ship(order, random)
            return
        }
        guard case .ok = await send(order, place, client: first, draws: random) else { return }
        switch kind {
        case 0:
            // Pay against cancel.
            let paidDraws = random.fork()
            async let paid: ClientAnswer = send(order, pay("1", total), client: first, draws: paidDraws)
            let cancelledDraws = random.fork()
            async let cancelled: ClientAnswer = send(order, .command(.cancel(reason: nil)), client: second, draws: cancelledDraws)
            _ = await (paid, cancelled)
        case 1:
            // Shipment against cancel, once paid.
            guard case .ok(_, let state) = await send(order, pay("1", total), client: first, draws: random), state.status == .paid else { return }
            let warehouse = newClient()
            let shippedDraws = random.fork()
            async let shipped: ClientAnswer = send(order, .command(.ship(shipmentID: ClientID("wms-\(order)")!)), client: warehouse, draws: shippedDraws)
            let cancelledDraws = random.fork()
            async let cancelled: ClientAnswer = send(order, .command(.cancel(reason: nil)), client: second, draws: cancelledDraws)
            _ = await (shipped, cancelled)
        case 2:
            // Two payments in full at once: the second goes back.
            let oneDraws = random.fork()
            async let one: ClientAnswer = send(order, pay("a", total), client: first, draws: oneDraws)
            let twoDraws = random.fork()
            async let two: ClientAnswer = send(order, pay("b", total), client: second, draws: twoDraws)
            _ = await (one, two)
            await ship(order, random)
        default:
            // One payment id, two amounts: one of them is refused.
            let oneDraws = random.fork()
            async let one: ClientAnswer = send(order, pay("x", total), client: first, draws: oneDraws)
            let twoDraws = random.fork()
            async let two: ClientAnswer = send(order, pay("x", total + 100), client: second, draws: twoDraws)
            _ = await (one, two)
        }
        await send(order, .read, client: second, draws: random)
    }

    /// The warehouse ships a paid order after a handling time, with its
    /// shipment id, sending again until it gets a definite answer.
    private func ship(_ order: ClientID, _ random: RandomStream) async {
        guard random.chance(0.6) else { return }
        await sleep(random.uniform(200_000_000...1_000_000_000))
        let warehouse = newClient()
        guard case .ok(_, let state) = await send(order, .read, client: warehouse, draws: random), state.status == .paid else { return }
        await send(order, .command(.ship(shipmentID: ClientID("wms-\(order)")!)), client: warehouse, draws: random, attempts: 6)
    }

    // MARK: Liveness

    /// After the heal, every order must be answered again and take a write
    /// again: each is sent its first command again (a place, or a payment
    /// if it never had one), through random nodes, until a definite answer
    /// or `deadlineNs`. A repeat is mostly answered from what the log holds,
    /// so an order that can still change (placed or paid) is then
    /// cancelled: a new event through the whole commit path, which under
    /// `--acks all` every replica of its list must vouch for. The answer
    /// kept is the cancel's when one was sent.
    func probe(until deadlineNs: Int64) async -> [ClientID: ClientAnswer] {
        let client = newClient()
        var answers: [ClientID: ClientAnswer] = [:]
        await withTaskGroup(of: (ClientID, ClientAnswer).self) { group in
            for order in history.orders {
                let operations = history.operations(of: order)
                guard let first = operations.first(where: { if case .command(.place) = $0.call { return true } else { return false } })
                    ?? operations.first(where: { if case .command = $0.call { return true } else { return false } })
                else { continue }
                let draws = world.stream("probe \(order)")
                group.addTask { [self] in
                    var answer = ClientAnswer.unknown("no answer before the end of the run")
                    while world.nowNs < deadlineNs {
                        answer = await send(order, first.call, client: client, draws: draws, attempts: 1)
                        if case .unknown = answer { await sleep(250_000_000) } else { break }
                    }
                    guard case .ok(_, let state) = answer, state.status == .placed || state.status == .paid else { return (order, answer) }
                    let cancel = ForwardedCall.command(.cancel(reason: "probe"))
                    answer = .unknown("the cancel got no answer before the end of the run")
                    while world.nowNs < deadlineNs {
                        answer = await send(order, cancel, client: client, draws: draws, attempts: 1)
                        if case .unknown = answer { await sleep(250_000_000) } else { break }
                    }
                    return (order, answer)
                }
            }
            for await (order, answer) in group { answers[order] = answer }
        }
        return answers
    }
}
