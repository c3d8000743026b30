import CRC32CHardware

/// CRC-32C (Castagnoli), slicing-by-8 in software. Used as the per-event
/// checksum: it catches torn or edited rows; it is not a defence against an
/// adversary. Uses the CPU's CRC-32C instruction when it has one (x86-64
/// with SSE 4.2); the same sum either way.
public enum CRC32C {
    static let hardware = orderly_crc32c_hardware_available() == 1

    /// tables[k][b]: the CRC of byte b followed by k zero bytes.
    private static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for index in 0..<256 {
            var crc = UInt32(index)
            for _ in 0..<8 {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1
            }
            tables[index] = crc
        }
        for index in 0..<256 {
            for slice in 1..<8 {
                let previous = tables[(slice - 1) * 256 + index]
                tables[slice * 256 + index] = tables[Int(previous & 0xFF)] ^ (previous >> 8)
            }
        }
        return tables
    }()

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var state = Accumulator()
        bytes.withUnsafeBufferPointer { state.update(UnsafeRawBufferPointer($0)) }
        return state.value
    }

    /// Incremental form, so a record's fields can be fed without joining them.
    public struct Accumulator {
        private var crc: UInt32 = 0xFFFF_FFFF
        /// Read once here: a global's lazy check on every update costs more
        /// than the update itself for short fields.
        private let hardware = CRC32C.hardware
        public init() {}

        public mutating func update(_ bytes: UnsafeRawBufferPointer) {
            guard hardware else { return updateInSoftware(bytes) }
            guard let start = bytes.baseAddress else { return }
            crc = orderly_crc32c_hardware_update(crc, start, bytes.count)
        }

        /// Slicing-by-8 over tables: the form any CPU runs.
        mutating func updateInSoftware(_ bytes: UnsafeRawBufferPointer) {
            CRC32C.tables.withUnsafeBufferPointer { table in
                var crc = self.crc
                var index = 0
                let count = bytes.count
                while index + 8 <= count {
                    let low = crc ^ bytes.loadUnaligned(fromByteOffset: index, as: UInt32.self).littleEndian
                    let high = bytes.loadUnaligned(fromByteOffset: index + 4, as: UInt32.self).littleEndian
                    crc = table[7 * 256 + Int(low & 0xFF)] ^ table[6 * 256 + Int((low >> 8) & 0xFF)]
                        ^ table[5 * 256 + Int((low >> 16) & 0xFF)] ^ table[4 * 256 + Int(low >> 24)]
                        ^ table[3 * 256 + Int(high & 0xFF)] ^ table[2 * 256 + Int((high >> 8) & 0xFF)]
                        ^ table[1 * 256 + Int((high >> 16) & 0xFF)] ^ table[Int(high >> 24)]
                    index += 8
                }
                while index < count {
                    crc = table[Int((crc ^ UInt32(bytes[index])) & 0xFF)] ^ (crc >> 8)
                    index += 1
                }
                self.crc = crc
            }
        }

        public mutating func update(_ string: String) {
            var string = string
            string.withUTF8 { update(UnsafeRawBufferPointer($0)) }
        }

        public mutating func update(_ integer: Int64) {
            withUnsafeBytes(of: integer.littleEndian) { update($0) }
        }

        public var value: UInt32 { crc ^ 0xFFFF_FFFF }
    }
}
