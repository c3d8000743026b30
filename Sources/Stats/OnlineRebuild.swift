import Foundation
import Logging
import Node

/// Rebuilds the live projection while it serves: a second tail reads every
/// log from the start into a shadow file; once the shadow has read every
/// origin as far as the live projection, its contents replace the live
/// ones in one transaction and the shadow is removed.
public actor OnlineRebuild {
    public enum Phase: String, Sendable {
        case idle, running, swapped, failed
    }

    private let store: StatsStore
    private let clients: PeerClients
    private let config: LogTail.Config
    private let id: String
    private let logger: Logger
    public private(set) var phase: Phase = .idle
    public private(set) var detail: String?
    public private(set) var startedAtMs: Int64?
    public private(set) var finishedAtMs: Int64?
    private var task: Task<Void, Never>?

    public init(store: StatsStore, clients: PeerClients, config: LogTail.Config, id: String, logger: Logger) {
        self.store = store
        self.clients = clients
        self.config = config
        self.id = id
        self.logger = logger
    }

    /// Starts a rebuild; false when one is running.
    public func start() -> Bool {
        guard phase != .running else { return false }
        phase = .running
        detail = nil
        startedAtMs = Int64(Date().timeIntervalSince1970 * 1000)
        finishedAtMs = nil
        task = Task { await self.rebuild() }
        return true
    }

    private func finish(_ phase: Phase, _ detail: String?) {
        self.phase = phase
        self.detail = detail
        finishedAtMs = Int64(Date().timeIntervalSince1970 * 1000)
    }

    private func rebuild() async {
        let path = store.path + ".rebuild"
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        do {
            let shadow = try StatsStore(path: path)
            let tail = LogTail(sink: shadow, clients: clients, config: config, id: id + "-rebuild", logger: logger)
            let tailing = Task { try? await tail.run() }
            defer { tailing.cancel() }
            logger.info("online rebuild started", metadata: ["shadow": "\(path)"])
            let deadline = ContinuousClock.now + .seconds(3600)
            while ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
                if try await store.replaceContents(from: path) {
                    tailing.cancel()
                    let counted = try await store.eventsCounted()
                    logger.info("online rebuild swapped in", metadata: ["events": "\(counted)"])
                    finish(.swapped, nil)
                    return
                }
            }
            finish(.failed, "the shadow did not catch up within an hour")
        } catch {
            logger.error("online rebuild failed", metadata: ["error": "\(error)"])
            finish(.failed, "\(error)")
        }
    }
}
