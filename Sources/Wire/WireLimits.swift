/// Every limit of the peer protocol, in one place.
public enum WireLimits {
    /// "OR": the first two bytes after the length of every frame.
    public static let magic: UInt16 = 0x4F52
    /// 6: one fetch gathers several orders (a promise per order in the
    /// reply). 5: store frames (a new leader puts an order's events on a majority
    /// before it answers from them). 4: log identity (recovery frames; a log's fetch naming the id and
    /// checksum of the event the follower holds before it). 3: leadership
    /// terms (grant frames; the terms a follower granted in its view; an
    /// order's fetch answered with the holder's term). 2 added the
    /// follower's view to fetches.
    public static let protocolVersion: UInt8 = 7
    /// length(4) magic(2) version(1) type(1) checksum(4).
    public static let headerBytes = 12
    /// Largest frame accepted, header included. A larger length closes the
    /// connection before anything is buffered.
    public static let frameBytesMax = 4 * 1024 * 1024
    public static let stringBytesMax = 256
    public static let nonceBytes = 32
}
