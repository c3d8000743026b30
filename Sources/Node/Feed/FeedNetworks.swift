import LogStorage
import Membership
import OrderDomain
import Synchronization
import Wire

/// A clustered node's feeds reach its peers over its peer network and
/// itself in process: what its own address is asked goes to its inbox, as
/// a peer's request would.
struct SelfShortcutNetwork: PeerNetwork {
    let base: any PeerNetwork
    let selfAddress: String
    let selfID: String
    let inbox: any PeerInbox

    var filter: PeerFilter { base.filter }

    func send(_ message: PeerMessage, to address: String, timeout: Duration) async {
        await base.send(message, to: address, timeout: timeout)
    }

    func call(_ request: PeerRequest, to address: String, timeout: Duration) async throws -> PeerReply {
        if address == selfAddress { return await inbox.answer(request, from: selfID) }
        return try await base.call(request, to: address, timeout: timeout)
    }

    func closeAll() async {}
}

/// Wakes what waits for the next commit of a log (registered once per
/// node on `LogStore.onCommit`).
final class CommitSignal: Sendable {
    private let state = Mutex<(committed: Int64, waiters: [UInt64: (Int64, CheckedContinuation<Void, Never>)], next: UInt64)>((0, [:], 0))

    func committed(_ offset: Int64) {
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.committed = max(state.committed, offset)
            let due = state.waiters.filter { $0.value.0 < offset }
            for key in due.keys { state.waiters[key] = nil }
            return due.values.map(\.1)
        }
        for continuation in ready { continuation.resume() }
    }

    /// Returns once the log committed past `offset`, or after `timeout`.
    func wait(beyond offset: Int64, current: Int64, timeout: Duration) async {
        let id = state.withLock { state -> UInt64 in
            state.next += 1
            state.committed = max(state.committed, current)
            return state.next
        }
        // Registered before the timer starts, so the timer always finds it
        // (or finds it answered by a commit).
        let timer = Mutex<Task<Void, Never>?>(nil)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if state.committed > offset { return true }
                state.waiters[id] = (offset, continuation)
                return false
            }
            if now {
                continuation.resume()
                return
            }
            timer.withLock {
                $0 = Task {
                    try? await Task.sleep(for: timeout)
                    self.state.withLock { $0.waiters.removeValue(forKey: id) }?.1.resume()
                }
            }
        }
        timer.withLock { $0?.cancel() }
    }
}

/// A node on its own has no peers: its feeds read its log in process,
/// through the same requests a peer would answer.
struct LocalLogNetwork: PeerNetwork {
    static let address = "local"
    let log: any LogStore
    let nodeID: String
    let signal: CommitSignal
    let filter = PeerFilter()

    func send(_ message: PeerMessage, to address: String, timeout: Duration) async {}

    func call(_ request: PeerRequest, to address: String, timeout: Duration) async throws -> PeerReply {
        guard address == Self.address else { throw EngineError.unavailable("a node without peers reaches only itself") }
        switch request {
        case .view:
            return .view([Member(id: nodeID, http: "", peer: Self.address, incarnation: 1)])
        case .fetch(let fetch):
            switch fetch.scope {
            case .orders(let orderIDs):
                var events: [EventRecord] = []
                for orderID in orderIDs { events += try await log.events(orderID: orderID.rawValue, afterVersion: 0) }
                return .fetch(FetchReply(events: events, throughOffset: 0, holderLastOffset: 0, refusal: nil))
            case .log(let origin, let fromOffset, let eventsMax, let waitMs, _, _, _):
                var events = try await read(origin, from: fromOffset, max: eventsMax)
                if events.isEmpty && waitMs > 0 && origin == nodeID {
                    await signal.wait(beyond: fromOffset - 1, current: log.committedOffset, timeout: .milliseconds(Int(waitMs)))
                    events = try await read(origin, from: fromOffset, max: eventsMax)
                }
                let through = events.last?.offset ?? (fromOffset - 1)
                let end = origin == nodeID ? log.committedOffset : through
                return .fetch(FetchReply(events: events, throughOffset: through, holderLastOffset: end, refusal: nil))
            }
        default:
            return request.refused("a node without peers answers only views and fetches")
        }
    }

    private func read(_ origin: String, from offset: Int64, max: UInt32) async throws -> [EventRecord] {
        let committed = log.committedOffset
        let events = try await log.scan(origin: origin, fromOffset: offset, limit: Int(max))
        return origin == nodeID ? events.filter { $0.offset <= committed } : events
    }

    func closeAll() async {}
}
