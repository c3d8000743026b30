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
        let id = Substring(eventID)
        guard id.hasPrefix(origin + "-") else { return false }
        let rest = id.dropFirst(origin.count + 1)
        guard let dash = rest.lastIndex(of: "-") else { return false }
        let logID = rest[..<dash]
        let digits = rest[rest.index(after: dash)...]
        return !logID.isEmpty && !logID.contains("-")
            && !digits.isEmpty && digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
            && Int64(digits) == offset
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
