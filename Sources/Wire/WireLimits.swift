/// Every limit of the peer protocol, in one place.
public enum WireLimits {
    /// "OR": the first two bytes after the length of every frame.
    public static let magic: UInt16 = 0x4F52
    /// 2: fetches carry the follower's view, and followers send it when it
    /// changes (the vouching of writes).
    public static let protocolVersion: UInt8 = 2
    /// length(4) magic(2) version(1) type(1) checksum(4).
    public static let headerBytes = 12
    /// Largest frame accepted, header included. A larger length closes the
    /// connection before anything is buffered.
    public static let frameBytesMax = 4 * 1024 * 1024
    public static let stringBytesMax = 256
    public static let nonceBytes = 32
}
