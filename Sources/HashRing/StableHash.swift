/// A 64-bit hash that is the same in every process, machine and release
/// (Swift's `Hasher` is seeded per process). FNV-1a over the UTF-8 bytes,
/// then MurmurHash3's fmix64 finaliser so nearby strings spread evenly.
/// Changing it moves every key: the test pins its values.
public enum StableHash {
    public static func hash64(_ text: String) -> UInt64 {
        hash64(bytes: text.utf8)
    }

    /// The same hash over bytes (a String's UTF-8 gives the same value).
    @inlinable
    public static func hash64(bytes: some Sequence<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        hash ^= hash >> 33
        hash &*= 0xFF51_AFD7_ED55_8CCD
        hash ^= hash >> 33
        hash &*= 0xC4CE_B9FE_1A85_EC53
        hash ^= hash >> 33
        return hash
    }
}
