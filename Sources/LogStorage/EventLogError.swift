/// Everything the log can refuse or detect. Each case says where it happened.
public enum EventLogError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A row whose checksum does not match its columns: reported, never skipped.
    case corruptEvent(origin: String, offset: Int64, orderID: String)
    case corruptCheckpoint(orderID: String)
    case schemaTooNew(version: Int)
    case wrongOwner(expected: String, found: String)
    case overloaded(pendingMax: Int)
    case closed
    case invalidAppend(String)
    case noLogFile(path: String)
    /// fsync of the log failed: what it held may not be on disk.
    case syncFailed(String)
    /// SQLite failed a read.
    case readFailed(String)
    /// An append's `CommitCheck` refused it: nothing of it was written.
    case refusedAtCommit(String)

    public var description: String {
        switch self {
        case .corruptEvent(let origin, let offset, let orderID):
            return "corrupt event at origin \(origin) offset \(offset) (order \(orderID)): checksum mismatch"
        case .corruptCheckpoint(let orderID):
            return "corrupt checkpoint for order \(orderID): checksum mismatch"
        case .schemaTooNew(let version):
            return "the log holds migration \(version), which this build does not know: it was written by a newer release"
        case .wrongOwner(let expected, let found):
            return "this log belongs to node \(found), not \(expected)"
        case .overloaded(let pendingMax):
            return "the log writer has \(pendingMax) appends waiting; try again"
        case .closed:
            return "the event log is closed"
        case .invalidAppend(let reason):
            return "invalid append: \(reason)"
        case .noLogFile(let path):
            return "no log file at \(path)"
        case .syncFailed(let reason):
            return "fsync of the event log failed (\(reason)); restart the node to recover from its file"
        case .readFailed(let reason):
            return "reading the event log failed: \(reason)"
        case .refusedAtCommit(let reason):
            return "not written: \(reason)"
        }
    }
}
