/// Every limit of the peer protocol, in one place.
public enum WireLimits {
    /// "OR": the first two bytes after the length of every frame.
    public static let magic: UInt16 = 0x4F52
    /// 10: a node that leaves hands over: it asks each peer which ring it
    /// holds (an optional flag after a recovery request, the ring after its
    /// reply) and stops once every other member holds a ring without it.
    /// 9: a new term's leader may ask each replica that grants it how far
    /// it holds each log (an optional flag after a grant request, the
    /// offsets after its reply), and then decides on an order of which no
    /// replica held anything without asking for its events.
    /// 8: versions are negotiated (a hello in the client's highest version,
    /// answered in the highest both speak; a welcome names the versions the
    /// server speaks). 7: a follower says whether it kept the event it names.
    /// 6: one fetch gathers several orders (a promise per order in the
    /// reply). 5: store frames (a new leader puts an order's events on a majority
    /// before it answers from them). 4: log identity (recovery frames; a log's fetch naming the id and
    /// checksum of the event the follower holds before it). 3: leadership
    /// terms (grant frames; the terms a follower granted in its view; an
    /// order's fetch answered with the holder's term). 2 added the
    /// follower's view to fetches.
    /// The versions this release speaks: its own and the one before, so a
    /// cluster is upgraded one node at a time (docs/protocol.md).
    public static let protocolVersions: ClosedRange<UInt8> = 9...10
    /// The newest version this release speaks.
    public static var protocolVersion: UInt8 { protocolVersions.upperBound }
    /// length(4) magic(2) version(1) type(1) checksum(4).
    public static let headerBytes = 12
    /// Largest frame accepted, header included. A larger length closes the
    /// connection before anything is buffered.
    public static let frameBytesMax = 4 * 1024 * 1024
    public static let stringBytesMax = 256
    /// A client's text in a forwarded command (a customer, a sku, a cancel
    /// reason): as long as a request body lets it be. The leader's domain
    /// rules refuse what is too long, with the answer a local leader gives;
    /// the frame's size bounds what a peer can make a node hold.
    public static let clientTextBytesMax = Int(UInt16.max)
    /// A forwarded reply's error message (the code and message a client
    /// gets): longer ones are cut to this when sent.
    public static let messageBytesMax = 2048
    public static let nonceBytes = 32
}
