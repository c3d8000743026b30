import OrderDomain
import Synchronization

/// One seed, end to end: start the cluster, run the clients and the
/// seed's faults, heal, let the cluster go quiet, probe every order, check.
public struct SimulationRun: Sendable {
    public let seed: UInt64
    public let config: SimulationConfig

    public init(seed: UInt64, config: SimulationConfig) {
        self.seed = seed
        self.config = config
    }

    public struct Result: Sendable, Codable {
        public var seed: UInt64
        public var violations: [String]
        /// Orders whose linearizability check gave up (too many states).
        public var undecided: Int
        /// A hash of the whole history: every message, every client answer,
        /// every event in every log at the end. Two runs of one seed share it.
        public var historyHash: String
        public var traceTail: [String]
        public var jobs: Int
        public var messages: Int
        public var operations: Int
        public var acknowledged: Int
    }

    /// Runs the seed on the calling thread (which must not be a Swift
    /// concurrency thread the simulation's tasks could need).
    public func run(traceLines: Int = 60, stream: ((String) -> Void)? = nil) -> Result {
        let trace = Trace(capacity: max(traceLines, 1), stream: stream)
        let cluster = SimCluster(config: config, seed: seed, trace: trace)
        let history = History()
        let faults = Faults(cluster: cluster)
        let workload = Workload(cluster: cluster, history: history)
        trace.record(0, "seed \(seed): \(config.nodes) nodes, \(config.mode.rawValue) mode, acks \(config.acks.rawValue), faults \(config.faults.sorted().map(\.rawValue))")
        for node in cluster.nodes { cluster.start(node) }
        faults.schedule()
        workload.start()
        cluster.world.run(untilNs: config.quietEndNs)

        let probes = Mutex<[ClientID: ClientAnswer]>([:])
        let deadline = config.operatorRestartNs - 200_000_000
        cluster.clients.spawn {
            let answers = await workload.probe(until: deadline)
            probes.withLock { $0 = answers }
        }
        cluster.world.run(untilNs: config.operatorRestartNs)
        // The nodes whose fsync failed got out of the way (the probes went
        // to the others); an operator now restarts them on their files.
        for node in cluster.nodes where node.life?.store.hasFailed == true {
            trace.record(cluster.world.nowNs, "operator: restart \(node.id), whose fsync failed")
            cluster.crash(node, keepingUnsynced: 0)
            cluster.start(node)
        }
        cluster.world.run(untilNs: config.endNs)

        let checker = Checker(cluster: cluster, history: history, probes: probes.withLock { $0 }, faultWindows: faults.windows)
        var (violations, undecided) = checker.check()
        if cluster.world.escapes > 0 {
            violations.append("[determinism] \(cluster.world.escapes) jobs were enqueued from outside the simulation's thread")
        }
        for node in cluster.nodes {
            for event in (node.life?.store.image ?? node.disk)?.allEvents ?? [] {
                trace.mix(event.eventID)
                trace.mix(Int64(event.checksum))
            }
        }
        let operations = history.operations
        return Result(
            seed: seed, violations: violations, undecided: undecided, historyHash: trace.hash.hex, traceTail: trace.tail(traceLines),
            jobs: cluster.world.jobsRun, messages: cluster.network.sent, operations: operations.count,
            acknowledged: operations.filter(\.acknowledged).count)
    }
}
