import Foundation
import GRDBSQLite

extension GroupCommitWriter {
    /// SQLite calls this after each commit of the writer connection with the
    /// frames in the WAL. It does what SQLite's own hook does (checkpoint
    /// past `walAutocheckpointPages`) and notes where the WAL ends.
    fileprivate func walCommitted(frames: Int, _ connection: OpaquePointer?, _ schema: UnsafePointer<CChar>?) {
        walFrames = frames
        if frames >= options.walAutocheckpointPages {
            sqlite3_wal_checkpoint(connection, schema)
        }
    }

    /// Writes zeros ahead of SQLite's newest frame, 256 KiB at a time (each
    /// a short pause of the writer, and one fsync that journals), up to
    /// the size the WAL reaches between checkpoints (etcd preallocates its
    /// WAL for the same reason). An fdatasync after SQLite overwrites blocks
    /// the file already has need not journal a new size or extent, and takes
    /// about half as long as one after an append (106 µs against 190 µs
    /// here). SQLite reads frames only up to the first invalid one: zeros
    /// are invalid. Runs on the writer thread between transactions; the
    /// sync thread's next fdatasync covers the zeros too.
    func zeroWALAhead() {
        guard walDescriptor >= 0 else { return }
        let frameBytes = options.pageBytes + 24
        let target = 32 + options.walAutocheckpointPages * frameBytes
        let end = 32 + walFrames * frameBytes
        guard walZeroedThrough < target, walZeroedThrough - end < Self.walZeroChunk / 2 else { return }
        let from = max(walZeroedThrough, end)
        let count = min(Self.walZeroChunk, target - from)
        let wrote = Self.zeros.withUnsafeBytes { pwrite(walDescriptor, $0.baseAddress, count, off_t(from)) }
        if wrote > 0 { walZeroedThrough = from + wrote }
    }

    private static let walZeroChunk = 1 << 18
    private static let zeros = [UInt8](repeating: 0, count: walZeroChunk)
}

/// `sqlite3_wal_hook` callback of a pipelined writer (see `walCommitted`).
func walHook(_ context: UnsafeMutableRawPointer?, _ connection: OpaquePointer?, _ schema: UnsafePointer<CChar>?, _ frames: Int32) -> Int32 {
    guard let context else { return SQLITE_OK }
    Unmanaged<GroupCommitWriter>.fromOpaque(context).takeUnretainedValue().walCommitted(frames: Int(frames), connection, schema)
    return SQLITE_OK
}
