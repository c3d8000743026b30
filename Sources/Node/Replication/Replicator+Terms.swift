import LogStorage
import Logging
import OrderDomain
import Replication
import Synchronization
import Wire

/// Leadership terms (consistent mode). A node decides on an order only in
/// a term for the order's preference list that a majority of the list
/// granted it; each replica makes its grant durable before it answers, and
/// from then on vouches for no write of an older term for that list (its
/// views carry the terms it granted, see `Fence`). A new leader asks only
/// the replicas that granted its term for the order's events, so it holds
/// every acknowledged event before it decides; what a deposed leader still
/// writes is overruled in every fold (`OrderMerge.superseded`). A leader
/// checks at the commit that it still holds the term.
extension Replicator {
    /// The term this node decides the order's commands in, newer than
    /// `floor` (the newest term in the order's stream): the one it holds
    /// for the order's preference list, or a new one it asks the list for.
    /// Nil in available mode. Throws `EngineError.unavailable` when no
    /// majority grants it.
    public func term(for orderID: ClientID, above floor: Term) async throws -> Term? {
        guard config.partitionMode == .consistent, let directory else { return nil }
        let list = directory.preferenceList(for: orderID)
        let key = TermGroup.key(list)
        let epoch = directory.epoch
        for _ in 0..<Self.termAttemptsMax {
            enum Next { case held(Term), wait, start }
            let next = state.withLock { state -> Next in
                if state.heldEpoch != epoch {
                    // The view moved: terms are asked for again under it.
                    state.heldEpoch = epoch
                    state.held = [:]
                    state.frontiers = [:]
                }
                if let held = state.held[key], held > floor { return .held(held) }
                if state.acquiring[key] != nil { return .wait }
                state.acquiring[key] = []
                return .start
            }
            switch next {
            case .held(let term):
                return term
            case .wait:
                // One request for a list at a time: wait for the one running.
                guard let term = try await waitForAcquisition(key) else { continue }
                if term > floor { return term }
            case .start:
                do {
                    let term = try await acquire(list: list, key: key, above: floor, directory: directory)
                    for waiter in state.withLock({ $0.acquiring.removeValue(forKey: key) ?? [] }) { waiter.resume(returning: term) }
                    return term
                } catch {
                    for waiter in state.withLock({ $0.acquiring.removeValue(forKey: key) ?? [] }) { waiter.resume(throwing: error) }
                    throw error
                }
            }
        }
        throw EngineError.unavailable("order \(orderID): no term newer than \(floor) for \(key) could be had; retry")
    }

    static let termAttemptsMax = 4

    /// Waits for the running request of a term for `key`; nil when it
    /// ended before this caller could wait (look again).
    private func waitForAcquisition(_ key: String) async throws -> Term? {
        do {
            return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Term, any Error>) in
                let waiting = state.withLock { state -> Bool in
                    guard state.acquiring[key] != nil else { return false }
                    state.acquiring[key]!.append(continuation)
                    return true
                }
                if !waiting { continuation.resume(throwing: AcquisitionEnded()) }
            }
        } catch is AcquisitionEnded {
            return nil
        }
    }

    private struct AcquisitionEnded: Error {}

    private func acquire(list: [String], key: String, above floor: Term, directory: any ReplicaDirectory) async throws -> Term {
        try await loadPromises()
        let selfID = directory.nodeID
        let number = state.withLock { max($0.highestTerm, floor.number, $0.promises[key]?.number ?? 0) } + 1
        let term = Term(number: number, leader: selfID)
        // This node grants its own term first, durably, like any replica.
        let own = await grant(GrantRequest(group: key, term: term), from: selfID)
        guard own.granted else {
            throw EngineError.unavailable("this node cannot take a term for \(key): \(own.reason)")
        }
        let reachable = directory.reachablePeers()
        let (network, timeout) = (self.network, config.gatherTimeout)
        var granted = 1
        var refusals: [String] = []
        var held: [String: [String: Int64]] = [:]
        await withTaskGroup(of: (String, GrantReply?).self) { group in
            for member in list where member != selfID {
                guard let address = reachable[member] else { continue }
                group.addTask {
                    let request = GrantRequest(group: key, term: term, wantsHeld: true)
                    guard case .grant(let reply)? = try? await network.call(.grant(request), to: address, timeout: timeout)
                    else { return (member, nil) }
                    return (member, reply)
                }
            }
            for await (member, reply) in group {
                guard let reply else { continue }
                if reply.granted {
                    granted += 1
                    if let offsets = reply.held { held[member] = offsets }
                } else {
                    refusals.append("\(member): \(reply.reason)")
                    noteTerm(reply.promise)
                }
            }
        }
        let majority = list.count / 2 + 1
        guard granted >= majority else {
            throw EngineError.unavailable(
                "term \(term) for \(key) was granted by \(granted) of \(list.count) replicas, \(majority) needed"
                    + (refusals.isEmpty ? "" : " (\(refusals.joined(separator: "; ")))"))
        }
        // How far this node's copies reach now, for the logs it no longer
        // follows too (a member that left): see `TermFrontier`.
        let positions = held.isEmpty ? [:] : ((try? await log.replicaPositions()) ?? [:])
        let kept = state.withLock { state -> Bool in
            // A newer term granted meanwhile (here) deposes this one at once.
            guard state.promises[key] == term else { return false }
            state.held[key] = term
            let copies = state.follower.copies.mapValues(\.through)
            state.frontiers[key] = TermFrontier(
                term: term, held: held, own: selfID, positions: positions.merging(copies) { max($0, $1) })
            return true
        }
        guard kept else { throw EngineError.unavailable("term \(term) for \(key) was overtaken while it was granted") }
        logger.info("took a leadership term", metadata: ["group": "\(key)", "term": "\(term)", "granted_by": "\(granted)"])
        return term
    }

    /// Grants `request.term` when it is newer than what this node granted
    /// for the list and its sender leads the list in this node's view; the
    /// grant is durable before it is answered. A term this node held for the
    /// list ends.
    func grant(_ request: GrantRequest, from sender: String) async -> GrantReply {
        let current = { self.state.withLock { $0.promises[request.group] ?? .none } }
        guard config.partitionMode == .consistent, let directory else {
            return GrantReply(granted: false, promise: .none, reason: "this node runs without terms (available mode)")
        }
        if let recovering {
            // Its log may have gone back: what it would grant or vouch for
            // could contradict what it granted before.
            return GrantReply(granted: false, promise: current(), reason: recovering)
        }
        // After a ring change, a list of the new ring may share no member with
        // the majority that acknowledged a write under the old one (found by
        // seed 889: a node that held the writes left, the one that decided
        // them was cut off, and the two others, on a new list, made a
        // majority that had never seen them). A node grants, and confirms
        // reads, only once it holds every order its ring gives it: then any
        // majority of a new list holds what a majority of the old one did.
        guard holdsItsRing(directory.ringMembers) else {
            return GrantReply(
                granted: false, promise: current(), reason: "this node has not copied the orders of its ring (\(directory.ringNodes)) yet")
        }
        do {
            try await loadPromises()
        } catch {
            return GrantReply(granted: false, promise: .none, reason: "cannot read its promises: \(error)")
        }
        guard request.term.leader == sender else {
            return GrantReply(granted: false, promise: current(), reason: "a term is asked for by its own leader")
        }
        let members = TermGroup.members(request.group)
        let leader = directory.vouchView.leader(of: members)
        guard leader == sender else {
            return GrantReply(granted: false, promise: current(), reason: "\(sender) does not lead \(request.group) in this node's view (\(leader ?? "nobody") does)")
        }
        let known = current()
        if request.term < known {
            return GrantReply(granted: false, promise: known, reason: "it granted \(known) already")
        }
        // A new term ranks above every term this node granted under
        // another ring. An order's list changes with the ring, and the fold
        // compares the terms of its events whatever list granted them
        // (`OrderMerge.superseded`): a write this node let a leader of the
        // old list make, never acknowledged and held only by a node that
        // was down, must lose against what a leader of the new list
        // decides later, not win because its list had counted higher.
        // (Found by seed 75467, `--customers-per-second 40 --faults
        // restore,upgrade,crash,partition,disk`: a placement written in
        // term 15 of a list of two, on one disk only, came back after a
        // crash and overruled the order's acknowledged placement, payment
        // and cancellation, decided in term 13 of the list of three.)
        // Under one ring an order's list stays the same, so the lists of
        // one ring do not outbid each other (they would, taking their
        // first terms at once, and refuse commands meanwhile).
        let ring = directory.ringMembers.sorted().joined(separator: ",")
        if request.term > known {
            let bar = state.withLock { state in
                max(state.grantedBefore, state.grantedUnderRing.lazy.filter { $0.key != ring }.map(\.value).max() ?? .none)
            }
            if request.term <= bar {
                return GrantReply(granted: false, promise: bar, reason: "it granted \(bar) under another ring or an earlier life")
            }
            do {
                _ = try await log.append(AppendRequest(
                    events: [], promise: Promise(group: request.group, term: request.term.number, leader: request.term.leader)))
            } catch {
                return GrantReply(granted: false, promise: known, reason: "cannot store the grant: \(error)")
            }
        }
        let now = state.withLock { state -> Term in
            let merged = max(state.promises[request.group] ?? .none, request.term)
            state.promises[request.group] = merged
            state.highestTerm = max(state.highestTerm, merged.number)
            state.grantedUnderRing[ring] = max(state.grantedUnderRing[ring] ?? .none, merged)
            if let held = state.held[request.group], held < merged { state.held[request.group] = nil }
            return merged
        }
        guard now == request.term else { return GrantReply(granted: false, promise: now, reason: "it granted \(now) meanwhile") }
        // Read after the promise is in force here: every copy this node
        // vouched for in an older term was durable before, so it is below
        // these offsets (see `TermFrontier`). None when it cannot be read:
        // the leader then gathers.
        let held = request.wantsHeld ? try? await log.heldOffsets() : nil
        return GrantReply(granted: true, promise: now, held: held)
    }

    /// Asks the followers whose views do not show `term` granted to grant
    /// it now, once per term: a replica out of reach when the term was
    /// taken (a majority sufficed) must vouch for it too before `all` can
    /// acknowledge anything.
    func askForGrants(of term: Term, group key: String, from followers: Set<String>, directory: any ReplicaDirectory) {
        let reachable = directory.reachablePeers()
        let missing = state.withLock { state -> [(String, String)] in
            followers.sorted().compactMap { follower in
                guard let address = reachable[follower], state.tracker.views[follower]?.promises[key] != term,
                    state.grantsAsked[follower + "|" + key] != term
                else { return nil }
                state.grantsAsked[follower + "|" + key] = term
                return (follower, address)
            }
        }
        let (network, timeout) = (self.network, config.gatherTimeout)
        for (follower, address) in missing {
            spawner.spawn { [self] in
                let answer = try? await network.call(.grant(GrantRequest(group: key, term: term)), to: address, timeout: timeout)
                guard case .grant(let reply)? = answer, reply.granted || reply.promise > term else {
                    // Not granted for now (no answer; the replica is still
                    // copying the orders of its ring or recovering): the
                    // next write asks again, or `all` would wait for it for
                    // as long as the term lasts.
                    state.withLock { state in
                        if state.grantsAsked[follower + "|" + key] == term { state.grantsAsked[follower + "|" + key] = nil }
                    }
                    return
                }
                guard !reply.granted else { return }
                // It promised a newer term (under another ring, or in an
                // earlier life): it never vouches for this one, and under
                // `all` every write of the list would wait for it for as
                // long as the term lasts. The term ends here; the next
                // command takes one above the promise.
                noteTerm(reply.promise)
                state.withLock { state in
                    if state.held[key] == term { state.held[key] = nil }
                }
            }
        }
    }

    /// Whether this node still holds `term` for the order and leads it.
    public func holds(_ term: Term?, for orderID: ClientID) -> Bool {
        guard let term else { return true }
        guard let directory else { return false }
        let key = TermGroup.key(directory.preferenceList(for: orderID))
        return state.withLock { $0.held[key] == term } && directory.leads(orderID)
    }

    /// The check a leader's append makes right before its commit: the term
    /// is still held and the order still led here (leases included), so a
    /// decision taken before a pause never commits after it.
    public func commitCheck(_ orderID: ClientID, term: Term?) -> CommitCheck? {
        guard let term else { return nil }
        return CommitCheck { [self] in
            holds(term, for: orderID) ? nil : "order \(orderID): this node no longer holds term \(term) for it"
        }
    }

    /// The term this node granted for the order's preference list.
    func promise(for orderID: ClientID) -> Term? {
        guard let directory else { return nil }
        let key = TermGroup.key(directory.preferenceList(for: orderID))
        return state.withLock { $0.promises[key] }
    }

    /// A term seen elsewhere: later terms are numbered above it.
    func noteTerm(_ term: Term) {
        state.withLock { $0.highestTerm = max($0.highestTerm, term.number) }
    }

    /// A follower granted `promises`: a term this node holds for one of
    /// those lists that is older ends.
    func noteGranted(_ promises: [String: Term]) {
        guard !promises.isEmpty else { return }
        state.withLock { state in
            for (key, promise) in promises {
                state.highestTerm = max(state.highestTerm, promise.number)
                if let held = state.held[key], held < promise { state.held[key] = nil }
            }
        }
    }

    /// A read in consistent mode is answered only once a majority of the
    /// order's replicas confirm, after the read arrived, that they still
    /// grant `term` and see this node leading the order. A lease does not
    /// cover this: a replica hands an order back to its first node when
    /// that node returns, without ever releasing the node that led the
    /// order meanwhile, so a leader cut off without knowing it would answer
    /// from a state the order's next leader has moved past. Reads of one
    /// list that arrive while a confirmation runs share the next one.
    public func confirmRead(_ orderID: ClientID, term: Term?) async throws {
        guard let term, let directory else { return }
        let key = TermGroup.key(directory.preferenceList(for: orderID))
        guard holds(term, for: orderID) else {
            throw EngineError.unavailable("order \(orderID): this node no longer holds term \(term) for it; retry")
        }
        guard TermGroup.members(key).count > 1 else { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let start = state.withLock { state -> Bool in
                state.readsWaiting[key, default: []].append((term, continuation))
                return state.readRounds.insert(key).inserted
            }
            if start { spawner.spawn { await self.confirmReads(of: key) } }
        }
        // The round ran after the read arrived; the order must still be led
        // here in that term.
        guard holds(term, for: orderID) else {
            throw EngineError.unavailable("order \(orderID): this node stopped holding term \(term) for it; retry")
        }
    }

    /// Confirmation rounds for `key`'s reads, one after another, until no
    /// read waits.
    private func confirmReads(of key: String) async {
        while true {
            let waiting = state.withLock { state in
                let waiting = state.readsWaiting.removeValue(forKey: key) ?? []
                if waiting.isEmpty { state.readRounds.remove(key) }
                return waiting
            }
            if waiting.isEmpty { return }
            for term in Set(waiting.map(\.term)) {
                let refusal = await confirm(term, group: key)
                for read in waiting where read.term == term {
                    if let refusal {
                        read.continuation.resume(throwing: EngineError.unavailable("the read is not answered: \(refusal); retry"))
                    } else {
                        read.continuation.resume()
                    }
                }
            }
        }
    }

    /// Asks the other replicas of `key` whether they still grant `term` to
    /// this node; nil once a majority (this node included) does, else why
    /// not. A replica that granted a newer term deposes `term` here.
    private func confirm(_ term: Term, group key: String) async -> String? {
        guard let directory else { return nil }
        guard state.withLock({ $0.held[key] == term }) else { return "this node no longer holds term \(term)" }
        let members = TermGroup.members(key)
        let needed = members.count / 2
        let reachable = directory.reachablePeers()
        let targets = members.filter { $0 != directory.nodeID }.compactMap { member in reachable[member].map { (member, $0) } }
        guard targets.count >= needed else {
            return "only \(targets.count + 1) of the \(members.count) replicas of \(key) are reachable"
        }
        let (network, timeout, spawner) = (self.network, config.gatherTimeout, self.spawner)
        let tally = Mutex((granted: 0, answered: 0, refusals: [String](), done: false))
        return await withCheckedContinuation { (continuation: CheckedContinuation<String?, Never>) in
            for (member, address) in targets {
                spawner.spawn { [self] in
                    let answer = try? await network.call(.grant(GrantRequest(group: key, term: term)), to: address, timeout: timeout)
                    var granted = false
                    var refusal = "no answer"
                    if case .grant(let reply)? = answer {
                        granted = reply.granted
                        refusal = reply.reason
                        if !granted { noteGranted([key: reply.promise]) }
                    }
                    let outcome: String?? = tally.withLock { tally in
                        guard !tally.done else { return .none }
                        tally.answered += 1
                        if granted { tally.granted += 1 } else { tally.refusals.append("\(member): \(refusal)") }
                        if tally.granted >= needed {
                            tally.done = true
                            return .some(nil)
                        }
                        if tally.granted + targets.count - tally.answered < needed {
                            tally.done = true
                            return .some("term \(term) for \(key) was confirmed by \(tally.granted + 1) of \(members.count) replicas (\(tally.refusals.joined(separator: "; ")))")
                        }
                        return .none
                    }
                    if let outcome { continuation.resume(returning: outcome) }
                }
            }
        }
    }

    /// What this node tells an origin it copies: the nodes it lets lead on
    /// its ring, and the terms it granted for the lists that hold `origin`.
    func view(for origin: String) -> VouchView? {
        guard let directory else { return nil }
        var view = directory.vouchView
        // The ring whose orders this node holds in full: after a ring
        // change, the old one until the backfill of the new one is done
        // (the tail loops kept only what the ring of their time gave this
        // node, and `placement()` keeps what the old one gives it), so an
        // origin on the new ring counts none of its copies before then.
        if let backfilled = state.withLock({ $0.follower.backfilledRing }) { view.ring = backfilled.sorted() }
        // An origin keeps a follower's view with the highest sequence. A new
        // life starts from its wall clock (`init`), which may have gone
        // back since the last life; its incarnation, once its peers have
        // seen it alive, is above every earlier one, so the sequence rises
        // to it. (Found by seed 68179, `--nodes 5 --acks all`: a node whose
        // clock went back 2.5 s restarted, the origins kept its last life's
        // view, with the terms it had granted then, and ignored every later
        // one: it never vouched for a new term, and writes that needed it
        // were never acknowledged.)
        let (floor, overflow) = directory.incarnation.multipliedReportingOverflow(by: 1 << 16)
        let (promises, sequence) = state.withLock { state -> ([String: Term], UInt64) in
            let full = VouchView(ring: view.ring, eligible: view.eligible, promises: state.promises)
            if full != state.lastView {
                state.lastView = full
                state.viewSequence += 1
            }
            if !overflow && state.viewSequence < floor { state.viewSequence = floor }
            return (state.promises, state.viewSequence)
        }
        // The promises of the lists that hold `origin`, worked out again
        // only when the view changed (a fetch goes out with every batch).
        if let cached = state.withLock({ $0.originViews[origin] }), cached.sequence == sequence {
            view.promises = cached.promises
        } else {
            view.promises = promises.filter { TermGroup.members($0.key).contains(origin) }
            let filtered = view.promises
            state.withLock { $0.originViews[origin] = (sequence, filtered) }
        }
        view.sequence = sequence
        return view
    }

    /// Reads the promises from the log, once.
    func loadPromises() async throws {
        guard !state.withLock({ $0.promisesLoaded }) else { return }
        let stored = try await log.promises()
        state.withLock { state in
            guard !state.promisesLoaded else { return }
            for promise in stored {
                let term = Term(number: promise.term, leader: promise.leader)
                state.promises[promise.group] = max(state.promises[promise.group] ?? .none, term)
                state.highestTerm = max(state.highestTerm, promise.term)
                state.grantedBefore = max(state.grantedBefore, term)
            }
            state.promisesLoaded = true
        }
    }
}
