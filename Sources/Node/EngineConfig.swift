import OrderDomain

/// Tunables of one node's order engine; every limit in one place.
public struct EngineConfig: Sendable {
    public var nodeID: String
    /// A transactor idle this long is passivated (checkpoint on the way out).
    public var idleTimeout: Duration = .seconds(10)
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
