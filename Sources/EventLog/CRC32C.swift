/// CRC-32C (Castagnoli), table driven. Used as the per-event checksum: it
/// catches torn or edited rows; it is not a defence against an adversary.
public enum CRC32C {
    private static let table: [UInt32] = (0..<256).map { index -> UInt32 in
        var crc = UInt32(index)
        for _ in 0..<8 {
            crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1
        }
        return crc
    }

    public static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var state = Accumulator()
        state.update(bytes)
        return state.value
    }

    /// Incremental form, so a record's fields can be fed without joining them.
    public struct Accumulator {
        private var crc: UInt32 = 0xFFFF_FFFF
        public init() {}

        public mutating func update(_ bytes: some Sequence<UInt8>) {
            CRC32C.table.withUnsafeBufferPointer { table in
                for byte in bytes {
                    crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
                }
            }
        }

        public mutating func update(_ string: String) {
            var copy = string
            copy.withUTF8 { update($0) }
        }

        public mutating func update(_ integer: Int64) {
            withUnsafeBytes(of: integer.littleEndian) { update($0) }
        }

        public var value: UInt32 { crc ^ 0xFFFF_FFFF }
    }
}
