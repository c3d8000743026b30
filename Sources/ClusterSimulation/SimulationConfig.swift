import Replication

/// The faults a seed may choose from.
public enum FaultKind: String, Sendable, CaseIterable, Comparable {
    /// SIGKILL and power loss, then a restart on the same disk.
    case crash
    /// A restart with an empty disk (same node id).
    case disk
    /// The process stops running (SIGSTOP), then resumes with its clock jumped.
    case pause
    /// Links cut both ways between two groups of nodes.
    case partition
    /// Links cut one way only: A drops what B sends, B still gets A's.
    case oneway
    /// Two groups that cannot reach each other, and a node that reaches both.
    case bridge
    /// Messages lost, duplicated, delayed and reordered.
    case messages
    /// An fsync fails: the node's log refuses every write from then on.
    case fsync
    /// The node's log file is restored from an older backup (a snapshot of
    /// its committed transactions, synced or not, taken earlier; sometimes
    /// just before a power cut): it restarts on it, with the same log id.
    case restore
    /// Wall clocks of nodes disagree by up to seconds.
    case skew
    /// The ring changes: a new node joins, and an old one may leave for
    /// good (SIGTERM). At most one join and one leave a run, drawn from
    /// their own random stream: they do not move the other faults.
    case churn
    /// A rolling upgrade: each node in turn is stopped with SIGTERM (it
    /// leaves, and its process ends once a peer knows, after a graceful
    /// stop of up to 2 s) and started again on its disk a moment later, as
    /// an operator upgrading the cluster does. Half the runs, drawn from
    /// its own random stream: it does not move the other faults.
    case upgrade

    public static func < (lhs: FaultKind, rhs: FaultKind) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Every fault.
    public static let all = Set(allCases)

    /// Parses `crash,pause,...` or `all` / `none`.
    public static func parse(_ text: String) -> Set<FaultKind>? {
        switch text {
        case "all": return all
        case "none", "": return []
        default:
            var kinds: Set<FaultKind> = []
            for name in text.split(separator: ",") {
                guard let kind = FaultKind(rawValue: String(name.filter { $0 != " " })) else { return nil }
                kinds.insert(kind)
            }
            return kinds
        }
    }
}

/// What one simulated run is: the cluster, its settings, how long each
/// phase lasts, and which faults the seed may choose.
public struct SimulationConfig: Sendable {
    public var nodes = 3
    public var mode: PartitionMode = .consistent
    public var acks: AckPolicy = .quorum
    public var replicationFactor = 3
    public var faults: Set<FaultKind> = FaultKind.all

    /// Clients and faults run until here; then every fault heals (but a
    /// node whose fsync failed, which must get out of the way by itself).
    public var workloadEndMs: Int64 = 18_000
    /// The cluster then runs quietly until here; then every order is probed
    /// (it must take a write again) until `operatorRestartMs`.
    public var quietEndMs: Int64 = 23_000
    /// An operator restarts the nodes whose fsync failed (on what their
    /// files hold), and the cluster converges until the end.
    public var operatorRestartMs: Int64 = 26_000
    /// The run ends here, and the checker looks at every node's log.
    public var endMs: Int64 = 30_000
    /// Clients start once the nodes had time to find each other.
    public var workloadStartMs: Int64 = 1_500

    /// Customers started per simulated second.
    public var customersPerSecond = 6.0
    /// Orders that also get conflicting commands from other clients.
    public var contestedShare = 0.3
    /// Faults the seed schedules during the workload, at most.
    public var faultsMax = 6

    // Node settings (short, so a 30 s run sees passivations, checkpoints
    // and held payments expire).
    public var idleTimeout: Duration = .seconds(2)
    public var checkpointEvery: Int64 = 4
    /// Every passivation writes a checkpoint (nodes default to 16 events
    /// since the last one): checkpoints at every version, racing commands,
    /// copies and terms, stay under test, as before the default moved.
    public var passivationCheckpointEvents: Int64 = 1
    public var holdTimeoutMs: Int64 = 3_000
    /// How long after its hold timeout a payment whose order never came
    /// must be refunded.
    public var refundBoundMs: Int64 = 5_000

    /// A log sync takes this long (ns), sometimes 20 times more.
    public var syncDelayNs: ClosedRange<Int64> = 100_000...1_500_000
    public var slowSyncProbability = 0.02
    /// One way, client to node.
    public var clientLatencyNs: ClosedRange<Int64> = 100_000...600_000
    /// A client gives up on a call after this long (the answer is unknown).
    public var clientTimeout: Duration = .seconds(5)

    public init() {}

    var workloadEndNs: Int64 { workloadEndMs * 1_000_000 }
    var quietEndNs: Int64 { quietEndMs * 1_000_000 }
    var operatorRestartNs: Int64 { operatorRestartMs * 1_000_000 }
    var endNs: Int64 { endMs * 1_000_000 }
}
