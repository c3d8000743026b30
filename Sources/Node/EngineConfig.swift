import OrderDomain

/// Tunables of one node's order engine; every limit in one place.
public struct EngineConfig: Sendable {
    public var nodeID: String
    /// A transactor idle this long is passivated.
    public var idleTimeout: Duration = .seconds(10)
    /// Passivation writes a checkpoint of the order only when at least this
    /// many of its events came after its last one. Replaying fewer at the
    /// next activation reads a handful of rows instead of one, while a
    /// checkpoint for every passivated order cost a three-node cluster
    /// under sustained load about a sixth of its CPU (docs/performance.md).
    /// Replay stays bounded by `checkpointEveryEvents` either way. A
    /// graceful stop checkpoints every order that changed.
    public var passivationCheckpointEvents: Int64 = 16
    /// How often the passivation sweep runs.
    public var sweepInterval: Duration = .seconds(1)
    /// A checkpoint is written with the append once this many events have
    /// accumulated since the last one.
    public var checkpointEveryEvents: Int64 = 100
    /// How long a payment waits for its order before it is refunded.
    public var holdTimeoutMs: Int64 = 60_000
    /// How often due timers (held payments) are looked for.
    public var deadlineScanInterval: Duration = .milliseconds(500)
    /// Most due timers handled per scan.
    public var deadlinesPerScanMax: Int = 1000
    /// A due timer of an order another node leads is looked at again after
    /// this long (ms): within it, the leader's refund reaches this node's copy.
    public var timerRecheckMs: Int64 = 2000

    public init(nodeID: String) {
        self.nodeID = nodeID
    }
}
