/// The faults of one run, chosen by its seed, and the heal at the end of
/// the workload.
final class Faults: @unchecked Sendable {
    let cluster: SimCluster
    private var world: SimWorld { cluster.world }
    private let draws: RandomStream
    private var trace: Trace { cluster.trace }
    /// Nodes cut off by other nodes' partition switches (admin route).
    private var switched: Set<String> = []
    private var healed = false
    /// Nodes whose log sync has failed.
    private(set) var failedSyncs: Set<String> = []
    /// When each fault was in force (virtual ns), for the checker: a timer
    /// cannot fire on time on a node that is down or cut off.
    private(set) var windows: [(startNs: Int64, endNs: Int64)] = []

    init(cluster: SimCluster) {
        self.cluster = cluster
        draws = cluster.world.stream("faults")
    }

    /// Draws the run's faults and sets their times.
    func schedule() {
        let config = cluster.config
        if config.faults.contains(.churn) { scheduleChurn() }
        if config.faults.contains(.upgrade) { scheduleUpgrade() }
        let kinds = config.faults.subtracting([.churn, .upgrade]).sorted()
        guard !kinds.isEmpty, config.faultsMax > 0 else {
            if !config.faults.isDisjoint(with: [.churn, .upgrade]) { world.at(config.workloadEndNs) { [self] in heal() } }
            return
        }
        let count = Int(draws.next() % UInt64(config.faultsMax + 1))
        let firstNs = config.workloadStartMs * 1_000_000 + 500_000_000
        let lastNs = config.workloadEndNs - 2_000_000_000
        guard lastNs > firstNs else { return }
        for _ in 0..<count {
            let kind = draws.pick(kinds)
            let at = draws.uniform(firstNs...lastNs)
            let durationNs = draws.uniform(300_000_000...5_000_000_000)
            let seed = draws.next()
            world.at(at) { [self] in inject(kind, durationNs: durationNs, seed: seed) }
        }
        world.at(config.workloadEndNs) { [self] in heal() }
    }

    /// A node joined or left: until every node holds its orders on the new
    /// ring, no other node's data goes out of reach (that would leave a
    /// write the ring moved nowhere, by design).
    private var churned = false

    /// Half the runs change the ring: a new node joins, and (60% of those)
    /// one of the others leaves later. Drawn from their own stream.
    private func scheduleChurn() {
        let draws = world.stream("churn")
        guard let (firstNs, lastNs) = drawnWindow(draws) else { return }
        let joinAt = draws.uniform(firstNs...lastNs)
        world.at(joinAt) { [self] in
            guard !healed else { return }
            // As an operator adds a node: while every node is up and holds
            // its data (a new node with an empty log waits, as a replaced
            // disk does, for every member of the ring to answer it).
            guard cluster.nodes.allSatisfy({ $0.departed || ($0.isUp && $0.recoveredFromDiskLoss) }), failedSyncs.isEmpty else {
                trace.record(world.nowNs, "fault: churn: no node joins while one is down")
                return
            }
            injected(.churn, "a new node joins", untilNs: world.nowNs + 3_000_000_000)
            churned = true
            // Empty and recovering, like a replaced disk: no other node's
            // data goes out of reach until it has recovered.
            cluster.addNode().diskLost = true
        }
        guard draws.chance(0.6) else { return }
        let leaveAt = draws.uniform(joinAt...lastNs)
        let pick = draws.next()
        world.at(leaveAt) { [self] in leaveOne(pick: pick) }
    }

    /// The workload's window for a fault of its own stream, in half the
    /// runs (nil in the other half, or when the workload is too short).
    private func drawnWindow(_ draws: RandomStream) -> (firstNs: Int64, lastNs: Int64)? {
        let config = cluster.config
        let firstNs = config.workloadStartMs * 1_000_000 + 500_000_000
        let lastNs = config.workloadEndNs - 2_000_000_000
        guard lastNs > firstNs, draws.chance(0.5) else { return nil }
        return (firstNs, lastNs)
    }

    /// Half the runs upgrade the cluster: from a drawn moment, each node in
    /// turn (in id order) is stopped with SIGTERM and started again on its
    /// disk, a drawn gap apart. Drawn from their own stream.
    private func scheduleUpgrade() {
        let draws = world.stream("upgrade")
        guard let (firstNs, lastNs) = drawnWindow(draws) else { return }
        let startAt = draws.uniform(firstNs...lastNs)
        let gapNs = draws.uniform(1_000_000_000...4_000_000_000)
        let downNs = draws.uniform(100_000_000...1_000_000_000)
        let shutdownNs = draws.uniform(0...2_000_000_000)
        world.at(startAt) { [self] in upgrade(next: 0, gapNs: gapNs, downNs: downNs, shutdownNs: shutdownNs) }
    }

    /// Restarts the `next`th node (by id) gracefully, if it is running and
    /// reachable now (as an operator upgrades a healthy node), then the
    /// following one `gapNs` later.
    private func upgrade(next index: Int, gapNs: Int64, downNs: Int64, shutdownNs: Int64) {
        guard !healed else { return }
        let ids = cluster.ids.sorted()
        guard index < ids.count else { return }
        let node = cluster.node(ids[index])
        if node.isUp, !node.isPaused, node.life?.store.hasFailed == false, !failedSyncs.contains(node.id),
            !cluster.network.cut.contains(where: { $0.from == node.id || $0.to == node.id })
        {
            injected(
                .upgrade, "upgrade \(node.id): SIGTERM, stops in \(shutdownNs / 1_000_000) ms or more, started again on its disk \(downNs / 1_000_000) ms later",
                untilNs: world.nowNs + shutdownNs + gapNs)
            cluster.restartGracefully(node, downNs: downNs, shutdownNs: shutdownNs)
        } else {
            trace.record(world.nowNs, "fault: upgrade: \(node.id) is not running and reachable; left as it is")
        }
        world.after(shutdownNs + gapNs) { [self] in upgrade(next: index + 1, gapNs: gapNs, downNs: downNs, shutdownNs: shutdownNs) }
    }

    /// SIGTERM to one node, if it can say goodbye now (reached by every
    /// peer, both ways) and the ring keeps a replica set without it while
    /// no other node's data is out of reach.
    private func leaveOne(pick: UInt64) {
        guard !healed else { return }
        let candidates = cluster.nodes.filter { node in
            !node.departed && node.isUp && !node.isPaused && node.life?.store.hasFailed == false && !failedSyncs.contains(node.id)
                && !cluster.network.cut.contains { $0.from == node.id || $0.to == node.id }
        }
        guard !candidates.isEmpty, cluster.ids.count > cluster.config.replicationFactor, switched.isEmpty,
            cluster.network.lossProbability == 0, cluster.settledAfterChurn
        else {
            trace.record(world.nowNs, "fault: churn: no node may leave now")
            return
        }
        let target = candidates[Int(pick % UInt64(candidates.count))]
        guard mayLoseData(target) else { return }
        injected(.churn, "\(target.id) leaves for good", untilNs: world.nowNs + 3_000_000_000)
        churned = true
        cluster.leave(target)
    }

    /// One node at a time has its data out of reach for long (a replaced
    /// disk not yet recovered from its peers, a failed fsync until the
    /// operator restarts it): two replicas of an order gone so leave an
    /// acknowledged write nowhere, or no majority, by design.
    private func mayLoseData(_ target: SimNode) -> Bool {
        !cluster.nodes.contains { $0.id != target.id && !$0.departed && (!$0.recoveredFromDiskLoss || failedSyncs.contains($0.id)) }
            && (!churned || cluster.settledAfterChurn)
    }

    /// Notes a fault that took effect: in the trace, and (but skew) in the
    /// windows the checker reads.
    private func injected(_ kind: FaultKind, _ text: String, untilNs end: Int64) {
        trace.record(world.nowNs, "fault: " + text)
        if kind != .skew { windows.append((world.nowNs, end)) }
    }

    /// Starts a node that is down again `afterNs` from now, unless the run
    /// healed meanwhile (the heal starts it) or it left.
    private func restart(_ target: SimNode, afterNs: Int64) {
        world.after(afterNs) { [self] in
            if !healed && !target.isUp && !target.departed { cluster.start(target) }
        }
    }

    private func inject(_ kind: FaultKind, durationNs: Int64, seed: UInt64) {
        guard !healed else { return }
        func injected(_ text: String) {
            // A node whose fsync failed is out until the operator restarts it.
            let end = kind == .fsync ? cluster.config.operatorRestartNs : min(world.nowNs + durationNs, cluster.config.workloadEndNs)
            self.injected(kind, text, untilNs: end)
        }
        let nodes = cluster.nodes.filter { !$0.departed }
        let target = draws.pick(nodes)
        let ms = durationNs / 1_000_000
        switch kind {
        case .crash, .disk:
            // Half the time the crash waits (a little) for a moment when the
            // node has written and not yet synced: the window where an
            // acknowledgement sent too early would be lost.
            atAnUnsyncedMoment(target, enabled: draws.chance(0.5)) { [self] in
                // A node that started leaving meanwhile is left to finish.
                guard let life = target.life, !target.departed else { return }
                if kind == .disk, !mayLoseData(target) { return }
                let keep = draws.chance(0.5) ? Int(draws.next() % UInt64(life.store.unsyncedCount + 1)) : 0
                injected("\(kind == .disk ? "replace the disk of" : "crash") \(target.id) for \(ms) ms")
                if kind == .disk { cluster.replaceDisk(target) } else { cluster.crash(target, keepingUnsynced: keep) }
                restart(target, afterNs: durationNs)
            }
        case .restore:
            // A backup of the node's file now (what a reader of it sees:
            // committed transactions, synced or not); half the time the
            // power goes out right after it. Later its file is put back
            // from that backup.
            guard let life = target.life, !target.departed, !target.isPaused else { return }
            let backup = life.store.image
            // `orderly backup` fsyncs the file after its snapshot: what it
            // copied is durable on the node too.
            life.store.syncNow()
            let cutPower = draws.chance(0.5)
            let restartNs = draws.uniform(50_000_000...500_000_000)
            injected("back up \(target.id)'s log (own log through \(backup.lastOffset(of: target.id)))\(cutPower ? ", then cut its power" : ""); restore it in \(ms) ms")
            if cutPower {
                cluster.crash(target, keepingUnsynced: 0)
                restart(target, afterNs: restartNs)
            }
            world.after(durationNs) { [self] in
                guard !healed, target.isUp, !target.departed, mayLoseData(target) else { return }
                cluster.restore(target, from: backup)
                restart(target, afterNs: restartNs)
            }
        case .pause:
            // Likewise a pause, which then lands between a decision and its
            // commit.
            atAnUnsyncedMoment(target, enabled: draws.chance(0.5)) { [self] in
                guard target.isUp, !target.isPaused, !target.departed else { return }
                injected("pause \(target.id) for \(ms) ms")
                cluster.pause(target)
                world.after(durationNs) { [self] in
                    if !healed { cluster.resume(target) }
                }
            }
        case .partition:
            let (left, right) = split(cluster.ids)
            if draws.chance(0.5) {
                // Through the partition switch of one side only: the other
                // side does not know it is cut off.
                injected("\(left) switch off \(right) for \(ms) ms (they do not know)")
                for id in left { partitionSwitch(id, off: right) }
                world.after(durationNs) { [self] in
                    if !healed { for id in left { healSwitch(id) } }
                }
            } else {
                injected("partition \(left) | \(right) for \(ms) ms")
                cut(between: left, and: right, durationNs: durationNs)
            }
        case .oneway:
            let others = cluster.ids.filter { $0 != target.id }
            let chosen = others.filter { _ in draws.chance(0.6) }
            let peers = chosen.isEmpty ? [draws.pick(others)] : chosen
            if draws.chance(0.5) {
                injected("\(target.id) hears nothing from \(peers) for \(ms) ms (they still hear it)")
                cut(Set(peers.map { Link(from: $0, to: target.id) }), durationNs: durationNs)
            } else {
                injected("\(peers) hear nothing from \(target.id) for \(ms) ms (it still hears them)")
                cut(Set(peers.map { Link(from: target.id, to: $0) }), durationNs: durationNs)
            }
        case .bridge:
            guard nodes.count >= 3 else { return }
            let others = cluster.ids.filter { $0 != target.id }
            let (left, right) = split(others)
            injected("\(left) and \(right) cut from each other, \(target.id) reaches both, for \(ms) ms")
            cut(between: left, and: right, durationNs: durationNs)
        case .messages:
            let network = cluster.network
            network.lossProbability = Double(draws.uniform(5...30)) / 100
            network.duplicateProbability = Double(draws.uniform(5...20)) / 100
            network.slowProbability = Double(draws.uniform(5...30)) / 100
            injected("messages lost \(network.lossProbability), duplicated \(network.duplicateProbability), slow \(network.slowProbability) for \(ms) ms")
            world.after(durationNs) { [self] in
                if !healed { resetMessages() }
            }
        case .fsync:
            guard let life = target.life, !target.departed, mayLoseData(target) else { return }
            injected("the next fsync of \(target.id) fails")
            life.store.failNextSync()
            failedSyncs.insert(target.id)
        case .churn, .upgrade:
            return  // scheduled apart (`scheduleChurn`, `scheduleUpgrade`)
        case .skew:
            target.wallSkewMs = draws.uniform(-3_000...3_000)
            injected("\(target.id)'s wall clock is \(target.wallSkewMs) ms off")
        }
        _ = seed
    }

    /// Runs `body` now, or, when `enabled`, at the first moment within
    /// `unsyncedWaitNsMax` when the node holds writes not yet synced.
    private func atAnUnsyncedMoment(_ node: SimNode, enabled: Bool, _ body: @escaping () -> Void) {
        guard enabled else { return body() }
        let deadline = world.nowNs + Self.unsyncedWaitNsMax
        func look() {
            if world.nowNs >= deadline || (node.life?.store.unsyncedCount ?? 0) > 0 {
                body()
            } else {
                world.after(50_000) { look() }
            }
        }
        look()
    }

    static let unsyncedWaitNsMax: Int64 = 500_000_000

    /// Two groups, neither empty (nodes in a seeded order).
    private func split(_ ids: [String]) -> ([String], [String]) {
        var shuffled = ids
        for index in stride(from: shuffled.count - 1, to: 0, by: -1) {
            shuffled.swapAt(index, Int(draws.next() % UInt64(index + 1)))
        }
        let cut = 1 + Int(draws.next() % UInt64(max(1, shuffled.count - 1)))
        return (Array(shuffled[..<cut]).sorted(), Array(shuffled[cut...]).sorted())
    }

    private func cut(between left: [String], and right: [String], durationNs: Int64) {
        var links: Set<Link> = []
        for a in left {
            for b in right {
                links.insert(Link(from: a, to: b))
                links.insert(Link(from: b, to: a))
            }
        }
        cut(links, durationNs: durationNs)
    }

    private func cut(_ links: Set<Link>, durationNs: Int64) {
        let network = cluster.network
        let added = links.subtracting(network.cut)
        network.cut.formUnion(added)
        world.after(durationNs) { [self] in
            if !healed { network.cut.subtract(added) }
        }
    }

    private func partitionSwitch(_ id: String, off peers: [String]) {
        guard let life = cluster.node(id).life else { return }
        switched.formUnion(peers)
        life.executor.fire { life.node?.membership.partition(from: peers) }
    }

    private func healSwitch(_ id: String) {
        guard let life = cluster.node(id).life else { return }
        life.executor.fire { life.node?.membership.healPartition() }
    }

    private func resetMessages() {
        let network = cluster.network
        network.lossProbability = 0
        network.duplicateProbability = 0
        network.slowProbability = 0.01
    }

    /// The end of the workload: every link heals, every process runs again
    /// (a crashed one restarts on its disk, one stopping for an upgrade
    /// starts again on its disk now). A node whose fsync failed is
    /// left as it is: it must get out of the way on its own.
    func heal() {
        healed = true
        trace.record(world.nowNs, "heal: every link, every process")
        cluster.network.cut = []
        resetMessages()
        for node in cluster.nodes where !node.departed {
            if !node.isUp {
                cluster.start(node)
            } else if node.isPaused {
                cluster.resume(node)
            }
            // A node still stopping for an upgrade (it left; its process
            // runs on until a peer knows, for up to 10 s) is started again
            // now, as an operator finishes the upgrade.
            cluster.finishUpgrade(node)
        }
        for node in cluster.nodes { healSwitch(node.id) }
    }
}
