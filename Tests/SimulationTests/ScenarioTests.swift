import Foundation
import OrderDomain
import Synchronization
import Testing

@testable import ClusterSimulation

/// Schedules written out by hand on the simulated cluster, for protocol
/// bugs a seed found on one build only (a seed's history depends on the
/// build: another build suspends at other points and draws its schedule
/// differently), so that the bug stays covered on every build.
@Suite struct ScenarioTests {
    /// Runs `body` on a thread of its own: the simulation's driver must not
    /// be a thread the Swift concurrency pool could need.
    static func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: body()) }
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    /// Seed 6045 (`--acks all`, a release build of fdec9d9): a follower
    /// keeps only the orders its placement gives it, so the event where it
    /// stands in an origin's log may be one it only passed. The origin's
    /// disk is replaced before the order's replicas copy that event; its
    /// recovery puts back what the peers kept and skips that offset. The
    /// follower then named the passed event as one its copy held, was told
    /// "the log went back", and never copied the new log: it lacked every
    /// order the origin led from then on.
    @Test func aFollowerThatOnlyPassedTheLostTailOfAReplacedDiskCopiesTheNewLog() async throws {
        let outcome = await Self.onOwnThread { Self.passedTailScenario() }
        #expect(outcome.failures.isEmpty, "\(outcome.failures)\n\(outcome.trace.suffix(30).joined(separator: "\n"))")
    }

    /// A client's answer, once it comes.
    final class Answer: Sendable {
        let value = Mutex<ClientAnswer?>(nil)
    }

    struct Outcome: Sendable {
        var failures: [String] = []
        var trace: [String] = []
    }

    static func passedTailScenario() -> Outcome {
        var config = SimulationConfig()
        config.nodes = 4
        config.acks = .all
        config.faults = []
        let lines = Mutex<[String]>([])
        let trace = Trace(capacity: 1) { line in lines.withLock { $0.append(line) } }
        let cluster = SimCluster(config: config, seed: 1, trace: trace)
        var outcome = Outcome()
        defer { outcome.trace = lines.withLock { $0 } }
        func fail(_ why: String) -> Outcome {
            outcome.failures.append(why)
            outcome.trace = lines.withLock { $0 }
            return outcome
        }
        let world = cluster.world
        /// Runs the world until `condition` holds, for at most `seconds` of
        /// simulated time.
        func run(until condition: () -> Bool, within seconds: Int64) -> Bool {
            let deadline = world.nowNs + seconds * 1_000_000_000
            while !condition() {
                if world.nowNs >= deadline { return false }
                world.run(untilNs: world.nowNs + 10_000_000)
            }
            return true
        }
        func call(via node: String, _ order: ClientID, _ command: OrderCommand) -> Answer {
            let answer = Answer()
            let draws = world.stream("scenario")
            cluster.clients.spawn {
                let result = await cluster.call(via: node, order, .command(command), timeout: .seconds(5), draws: draws)
                answer.value.withLock { $0 = result }
            }
            return answer
        }
        func ready(_ id: String) -> Bool {
            guard let node = cluster.node(id).life?.node else { return false }
            return node.replicator?.recovering == nil && node.membership.ringMembers.count == 4
                && node.replicator?.backfilled(ring: node.membership.ringMembers) ?? false
        }

        for node in cluster.nodes { cluster.start(node) }
        guard run(until: { cluster.ids.allSatisfy(ready) }, within: 20) else { return fail("the cluster never settled") }

        // An order that api-4 does not keep, and one it does, both led by
        // the same origin.
        let membership = cluster.node("api-1").life!.node!.membership
        let candidates = (1...400).map { ClientID("o-\($0)")! }
        guard let passed = candidates.first(where: { !membership.preferenceList(for: $0).contains("api-4") }) else {
            return fail("no order without api-4")
        }
        let list = membership.preferenceList(for: passed)
        let origin = list[0]
        guard let kept = candidates.first(where: { membership.preferenceList(for: $0).first == origin && membership.preferenceList(for: $0).contains("api-4") })
        else { return fail("no order of \(origin) with api-4") }
        let line = OrderLineRequest(sku: Catalog.standard.page(after: nil, limit: 1).products[0].sku, qty: 1)

        let placed = call(via: origin, passed, .place(customer: "c-1", lines: [line]))
        guard run(until: { placed.value.withLock { $0 } != nil }, within: 10), case .ok = placed.value.withLock({ $0 })! else {
            return fail("placing \(passed) failed: \(String(describing: placed.value.withLock { $0 }))")
        }
        // The order's other replicas are cut off from its leader; api-4 is
        // not. The cancel is written to the leader's log, api-4 passes it,
        // the replicas never get it (so it is never acknowledged).
        for replica in list.dropFirst() {
            cluster.network.cut.insert(Link(from: origin, to: replica))
            cluster.network.cut.insert(Link(from: replica, to: origin))
        }
        let store = cluster.node(origin).life!.store!
        let before = store.committedOffset
        _ = call(via: origin, passed, .cancel(reason: nil))
        func follower(_ id: String) -> Int64 { cluster.node(id).life?.node?.replicator?.copies[origin]?.through ?? 0 }
        guard run(until: { store.committedOffset > before && follower("api-4") == store.committedOffset }, within: 5) else {
            return fail("api-4 did not pass the cancel (origin at \(store.committedOffset), api-4 at \(follower("api-4")))")
        }
        let lostOffset = store.committedOffset
        for replica in list.dropFirst() where follower(replica) >= lostOffset {
            return fail("\(replica) copied the cancel through the cut")
        }

        // The leader's disk is replaced; the network heals; it comes back
        // empty and recovers from its peers.
        cluster.replaceDisk(cluster.node(origin))
        cluster.network.cut = []
        cluster.start(cluster.node(origin))
        guard run(until: { ready(origin) }, within: 30) else { return fail("\(origin) never recovered") }
        let recovered = cluster.node(origin).life!.store!
        guard recovered.committedOffset >= lostOffset else {
            return fail("\(origin)'s recovered log ends at \(recovered.committedOffset), before \(lostOffset), which api-4 passed")
        }

        // The peers that kept what they copied catch up with the new log
        // (their fetches to the old process time out first).
        let others = cluster.ids.filter { $0 != origin && $0 != "api-4" }
        guard run(until: { others.allSatisfy { follower($0) >= recovered.committedOffset } }, within: 20) else {
            return fail("\(others) never reached \(origin)'s recovered log (\(others.map { follower($0) }))")
        }
        // What it leads now reaches api-4 (with acks all, it must, or the
        // write is not acknowledged).
        let next = call(via: origin, kept, .place(customer: "c-2", lines: [line]))
        guard run(until: { next.value.withLock { $0 } != nil }, within: 10), case .ok = next.value.withLock({ $0 })! else {
            let copies = cluster.ids.map { "\($0) at \(follower($0))" }.joined(separator: ", ")
            return fail("placing \(kept) after the recovery failed: \(String(describing: next.value.withLock { $0 })); \(origin)'s log ends at \(cluster.node(origin).life!.store!.committedOffset), copies: \(copies)")
        }
        let copied = run(
            until: {
                let image = cluster.node("api-4").life?.store.image
                return image?.allEvents.contains { $0.orderID == kept.rawValue && $0.origin == origin } ?? false
            }, within: 10)
        if !copied { return fail("api-4 never copied \(kept) from \(origin)'s new log (it stands at \(follower("api-4")))") }
        if cluster.world.escapes > 0 { return fail("\(cluster.world.escapes) jobs escaped the simulation") }
        return outcome
    }
}
