/// Event ids: `origin-logid-offset`.
public enum EventID {
    /// `origin-logid-offset`, the offset zero-padded to 12 digits so ids of
    /// one log sort in offset order. The log id is hex (no dash), so an id
    /// names one (origin, offset): the primary key keeps ids unique.
    public static func make(origin: String, logID: String, offset: Int64) -> String {
        make(prefix: "\(origin)-\(logID)-", offset: offset)
    }

    /// Whether `eventID` spells `origin-LOGID-offset` with a log id that has
    /// no dash: what lets `events` leave id uniqueness to its primary key.
    public static func spells(_ eventID: String, origin: String, offset: Int64) -> Bool {
        // On the UTF-8 bytes, without allocating: every copy stored is checked.
        var id = eventID
        var origin = origin
        return id.withUTF8 { id in
            origin.withUTF8 { origin in
                let dash = UInt8(ascii: "-")
                let start = origin.count + 1
                guard id.count > start, id[origin.count] == dash, id.starts(with: origin) else { return false }
                guard let last = id.lastIndex(of: dash), last > start, last + 1 < id.count else { return false }
                for index in start..<last where id[index] == dash { return false }
                var value: Int64 = 0
                for index in (last + 1)..<id.count {
                    let byte = id[index]
                    guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return false }
                    let (times, overflow) = value.multipliedReportingOverflow(by: 10)
                    let (sum, overflow2) = times.addingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
                    guard !overflow && !overflow2 else { return false }
                    value = sum
                }
                return value == offset
            }
        }
    }

    /// The same from `origin-logid-`, written into one allocation (the
    /// writer makes one per event).
    public static func make(prefix: String, offset: Int64) -> String {
        var digits = offset.magnitude
        var count = 1
        while digits >= 10 { digits /= 10; count += 1 }
        let width = max(12, count)
        var prefix = prefix
        return prefix.withUTF8 { head in
            String(unsafeUninitializedCapacity: head.count + width) { buffer in
                _ = buffer.initialize(fromContentsOf: head)
                var value = offset.magnitude
                var index = head.count + width - 1
                while index >= head.count {
                    buffer[index] = UInt8(ascii: "0") + UInt8(value % 10)
                    value /= 10
                    index -= 1
                }
                return head.count + width
            }
        }
    }
}
