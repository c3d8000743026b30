import LogStorage
import Logging
import OrderDomain
import Replication
import Wire

/// Log identity across a node's lives. A node's log can go back in time: a
/// replaced disk, a restore from a backup. Its peers still hold copies of
/// what it wrote (its acknowledged orders among them), the terms they
/// granted with it, and followers sit at offsets of its old log. So before
/// a node grants a term, answers a new leader's gather or leads anything,
/// it asks its peers what they hold of it:
///
/// - its own events they copied come back into its log as they were (ids,
///   offsets, checksums), and its log moves past the highest offset any
///   peer holds, so no new event takes an offset of the old log;
/// - it adopts, per preference list, the newest term any peer granted, so
///   it never grants an older one again;
/// - when its log was empty or behind its peers' copies, it waits until the
///   backfill of its ring is complete: it holds every event of its orders
///   that the others hold, so its grants and its gathers count again.
///
/// A node whose log was empty waits for every other member of the ring (a
/// write it held may now be on one other replica only, and any peer may
/// hold the newest copy of its log): a replaced disk while another node is
/// down waits for that node, or for it to leave the ring. A node that left
/// (old copies and terms name it for ever) is not waited for once every
/// peer that answered has copied the orders of its current ring, though it
/// is still asked while it answers (it may hold the only copy of one of this
/// node's events, and the peers' backfill read this node's log from this
/// node). One that kept its log needs a majority of the ring. A follower
/// names the event it holds at its position when it fetches, so a log that
/// went back anyway is refused loudly, never silently copied over.
extension Replicator {
    /// Why this node does not grant terms, answer gathers or lead yet; nil
    /// once it has recovered.
    public var recovering: String? {
        state.withLock { $0.recovered ? nil : $0.recoveryStatus }
    }

    /// What this node holds of `request.node` (see `RecoveryRequest`).
    func answerRecovery(_ request: RecoveryRequest) async -> RecoveryReply {
        do {
            try await loadPromises()
            let positions = try await log.replicaPositions()
            let (promises, recovered) = state.withLock { ($0.promises, $0.recovered) }
            // A log moved past an offset by a recovery holds nothing yet.
            // (A row that cannot be read counts as held.)
            let ownEvents: [EventRecord]
            do {
                ownEvents = log.committedOffset > 0 ? try await log.scan(origin: nil, fromOffset: 1, limit: 1) : []
            } catch {
                ownEvents = [EventRecord(origin: log.origin, offset: 0, orderID: "", version: 0, type: "", payload: "", eventID: "", recordedAt: 0)]
            }
            let holds = !ownEvents.isEmpty || !promises.isEmpty || positions.values.contains { $0 > 0 }
            let ring = directory?.ringMembers
            let backfilled = state.withLock { $0.follower.holds(ring) }
            var known = Set(positions.keys).union(directory?.ringMembers ?? [])
            for group in promises.keys { known.formUnion(TermGroup.members(group)) }
            return RecoveryReply(
                promises: promises.filter { TermGroup.members($0.key).contains(request.node) }, holdsAnything: holds, recovering: !recovered,
                knownNodes: known.subtracting([request.node]).sorted(), backfilled: backfilled,
                // A node that leaves itself holds nothing for another that
                // leaves: two stopped at once must not each hand over to
                // the other (seed 1844).
                heldRing: request.wantsRing ? (backfilled && recovered && directory?.isLeaving != true ? ring?.sorted() ?? [] : []) : nil)
        } catch {
            return RecoveryReply(promises: [:], holdsAnything: false, recovering: false, refusal: "cannot read its log: \(error)")
        }
    }

    /// Runs once per process, until this node has recovered (see above).
    func recover() async {
        guard let directory else {
            finishRecovery()
            return
        }
        let selfID = directory.nodeID
        try? await loadPromises()
        // A log without own events counts as empty (copies and terms may
        // be left of a recovery that did not finish: it starts over).
        let wasEmpty = log.committedOffset == 0
        // A log without own events that holds copies or terms was put back
        // from a backup: it lost data. An empty one may be a new node's:
        // it lost data only if its peers hold anything (below).
        if wasEmpty, (try? await log.replicaPositions())?.values.contains(where: { $0 > 0 }) == true || !state.withLock({ $0.promises.isEmpty }) {
            state.withLock { $0.lostData = true }
        }
        var waitingFor: Set<String> = []
        // Nodes the peers know of (their logs and terms name them), though
        // no live view may show them.
        var known: Set<String> = []
        // Nodes that left (SIGTERM) are not waited for once every peer
        // that answered holds its whole ring: what they held is there too.
        // Until then (a peer still copying the orders a node that left
        // handed over), they are, like any other. So is one that still
        // beats: its handover has not ended, and the peers' rings may be
        // held without its copies, the only ones of this node's writes
        // once this node's log went back (found by seed 75176,
        // `--customers-per-second 40 --faults
        // restore,upgrade,crash,partition,disk`, a release build of
        // a97d067: a log restored from a backup during another node's
        // handover took back only what the third node held, and wrote
        // other events at offsets the leaving node held; that node then
        // took its departure back).
        var skipDeparted = false
        while !Task.isCancelled {
            let departed = skipDeparted ? directory.departedAndStopped() : []
            let ring = directory.ringMembers.union(known).subtracting([selfID]).subtracting(departed)
            // Members that left are asked too while they still answer (a
            // graceful stop runs on for a while, an upgraded node comes
            // back): they may hold the only copy of an event of this log.
            // They are never waited for, and never count toward a majority.
            let reachable = directory.departedPeers().merging(directory.reachablePeers()) { _, live in live }
            let asked = Set(reachable.keys).filter { ring.contains($0) || directory.departed.contains($0) }
            var answers: [String: RecoveryReply] = [:]
            var why: [String: String] = [:]
            await withTaskGroup(of: (String, Result<RecoveryReply, EngineError>).self) { group in
                for peer in asked.sorted() {
                    let (network, address) = (self.network, reachable[peer]!)
                    group.addTask {
                        do {
                            guard case .recovery(let reply) = try await network.call(.recovery(RecoveryRequest(node: selfID)), to: address, timeout: .seconds(2))
                            else { return (peer, .failure(.unavailable("answered something else"))) }
                            if let refusal = reply.refusal { return (peer, .failure(.unavailable("refused: \(refusal)"))) }
                            return (peer, .success(reply))
                        } catch {
                            return (peer, .failure(.unavailable("\(error)")))
                        }
                    }
                }
                for await (peer, result) in group {
                    switch result {
                    case .success(let reply): answers[peer] = reply
                    case .failure(let error): why[peer] = "\(error)"
                    }
                }
            }
            // Nodes that left for good are named by old copies and terms
            // for ever: they are not waited for.
            let named = answers.values.reduce(into: Set<String>()) { $0.formUnion($1.knownNodes) }
                .subtracting([selfID]).subtracting(departed)
            let fromRing = answers.filter { ring.contains($0.key) }
            let everyPeerBackfilled = !fromRing.isEmpty && fromRing.values.allSatisfy(\.backfilled)
            if everyPeerBackfilled != skipDeparted, !directory.departed.isEmpty {
                skipDeparted = everyPeerBackfilled
                continue
            }
            if wasEmpty && !named.isSubset(of: ring) {
                known.formUnion(named)
                continue
            }
            // Who must have answered: with an empty log, every member of
            // the ring, released or not (an acknowledged write this node
            // held may be on one other replica only, and any may hold the
            // newest copy of its log); otherwise a majority of the ring.
            let missing: Set<String>
            if wasEmpty {
                missing = ring.subtracting(answers.keys)
            } else {
                let needed = (ring.count + 1) / 2  // with this node: a majority
                missing = fromRing.count >= needed ? [] : ring.subtracting(answers.keys)
            }
            if !missing.isEmpty {
                if missing != waitingFor {
                    logger.info("recovery waits for peers to answer", metadata: [
                        "peers": "\(missing.sorted())", "why": "\(missing.sorted().map { "\($0): \(why[$0] ?? "not reachable")" })",
                    ])
                    waitingFor = missing
                }
                state.withLock { $0.recoveryStatus = "\(Self.recoveringPrefix): waiting for \(missing.sorted().joined(separator: ", ")) to answer" }
                try? await clock.sleep(for: config.retryDelay)
                continue
            }
            do {
                state.withLock { $0.recoveryStatus = "\(Self.recoveringPrefix): reading its own events back from its peers" }
                let found = try await collect(from: answers, reachable: reachable)
                let terms = try await adopt(found.promises)
                let wentBack = found.floor > log.committedOffset
                if (wasEmpty && answers.values.contains { $0.holdsAnything }) || wentBack {
                    state.withLock { $0.lostData = true }
                    // Everything this node held of its orders may be gone: it
                    // reads every log of the ring again, now that every peer
                    // is reachable (a backfill done while one was away may
                    // have missed what only that one held).
                    state.withLock { $0.recoveryStatus = "\(Self.recoveringPrefix): copying its orders from its peers" }
                    while !Task.isCancelled, !(await backfill(directory.ringMembers, afterDataLoss: true)) {
                        try await clock.sleep(for: config.backfillRetryDelay)
                    }
                    try Task.checkCancellation()
                }
                // Its own events last: until they are back the log counts as
                // empty, so a crash before this point starts it all again.
                // A log recovered without own events moves past offset 1 all
                // the same: it never counts as empty again (the next start
                // needs a majority of the ring, not every member).
                let reimported = try await putBack(found.events, floor: max(found.floor, wasEmpty ? 1 : 0))
                if reimported > 0 || terms > 0 || wentBack {
                    logger.warning("recovered this node's log from the peers' copies", metadata: [
                        "own_events": "\(reimported)", "floor": "\(found.floor)", "terms": "\(terms)",
                    ])
                }
                finishRecovery()
                return
            } catch is CancellationError {
                return
            } catch {
                logger.warning("recovery failed; retrying", metadata: ["error": "\(error)"])
                state.withLock { $0.recoveryStatus = "\(Self.recoveringPrefix): \(error)" }
                try? await clock.sleep(for: config.retryDelay)
            }
        }
    }

    /// Leaving: which of `peers` (id, address) do not yet hold the orders
    /// of a ring without this node, and why. A peer of the release before
    /// cannot say (protocol 9): it is not waited for, as before.
    public func notYetHandedOver(_ peers: [String: String]) async -> [String: HandoverWait] {
        let selfID = log.origin
        var waiting: [String: HandoverWait] = [:]
        await withTaskGroup(of: (String, HandoverWait?).self) { group in
            for (peer, address) in peers.sorted(by: { $0.key < $1.key }) {
                let network = self.network
                group.addTask {
                    let reply: RecoveryReply
                    do {
                        guard case .recovery(let answer) = try await network.call(
                            .recovery(RecoveryRequest(node: selfID, wantsRing: true)), to: address, timeout: .seconds(1))
                        else { return (peer, HandoverWait(why: "answered something else", answered: true)) }
                        reply = answer
                    } catch {
                        return (peer, HandoverWait(why: "\(error)", answered: false))
                    }
                    // A refusal comes from a node that is starting or out of
                    // service (its log failed): it takes nothing over.
                    if let refusal = reply.refusal { return (peer, HandoverWait(why: "refused: \(refusal)", answered: false)) }
                    guard let ring = reply.heldRing else { return (peer, nil) }
                    if ring.isEmpty { return (peer, HandoverWait(why: "has not copied the orders of its ring yet", answered: true)) }
                    if ring.contains(selfID) { return (peer, HandoverWait(why: "holds the ring \(ring) with this node", answered: true)) }
                    return (peer, nil)
                }
            }
            for await (peer, wait) in group {
                if let wait { waiting[peer] = wait }
            }
        }
        return waiting
    }

    private func finishRecovery() {
        state.withLock { $0.recovered = true }
    }

    /// This node's own events its peers hold past its log, the highest
    /// offset any of them holds, and the newest term each granted per list.
    private func collect(
        from answers: [String: RecoveryReply], reachable: [String: String]
    ) async throws -> (events: [EventRecord], floor: Int64, promises: [String: Term]) {
        let own = log.origin
        var events: [Int64: EventRecord] = [:]
        var floor: Int64 = 0
        for peer in answers.keys.sorted() {
            guard let address = reachable[peer] else { continue }
            try await readLog(own, from: peer, at: address, after: log.committedOffset, timeout: .seconds(3)) { reply in
                floor = max(floor, reply.holderLastOffset)
                for event in reply.events { events[event.offset] = event }
            }
        }
        var newest: [String: Term] = [:]
        for reply in answers.values {
            for (group, term) in reply.promises { newest[group] = max(newest[group] ?? .none, term) }
        }
        return (events.values.sorted { $0.offset < $1.offset }, floor, newest)
    }

    /// Adopts, per list, the newest term a peer granted, durably: this node
    /// never grants an older one again. Returns how many it adopted.
    private func adopt(_ newest: [String: Term]) async throws -> Int {
        var adopted = 0
        for (group, term) in newest.sorted(by: { $0.key < $1.key }) where term > (state.withLock { $0.promises[group] } ?? .none) {
            _ = try await log.append(AppendRequest(events: [], promise: Promise(group: group, term: term.number, leader: term.leader)))
            state.withLock { state in
                state.promises[group] = max(state.promises[group] ?? .none, term)
                state.highestTerm = max(state.highestTerm, term.number)
                state.grantedBefore = max(state.grantedBefore, term)
                if let held = state.held[group], held < term { state.held[group] = nil }
            }
            adopted += 1
        }
        return adopted
    }

    /// Puts this node's own events back as they were and moves its log past
    /// `floor`, with the timers of the held payments among them.
    private func putBack(_ events: [EventRecord], floor: Int64) async throws -> Int {
        guard floor > log.committedOffset || !events.isEmpty else { return 0 }
        let reimported = try await log.reimport(events, floor: floor)
        let deadlines = Self.heldUntil(events)
        if !deadlines.isEmpty {
            _ = try await log.replicate(ReplicatedBatch(origin: "", events: [], throughOffset: nil, deadlines: deadlines))
        }
        return reimported
    }
}
