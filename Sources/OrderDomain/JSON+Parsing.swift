/// A strict RFC 8259 parser with limits, for payloads read back from the log
/// and bodies from the network: anything malformed, too deep or too large
/// is an error, never a crash.
extension JSONValue {
    /// Nesting deeper than this is refused (the parser recurses per level).
    public static let depthMax = 32
    /// Texts longer than this are refused before parsing. Far above any
    /// payload or snapshot the domain writes.
    public static let textBytesMax = 8 * 1024 * 1024

    /// Parses exactly one JSON value, with optional surrounding whitespace.
    public static func parse(_ text: String) throws(EventDecodingError) -> JSONValue {
        guard text.utf8.count <= textBytesMax else {
            throw EventDecodingError("invalid JSON: longer than \(textBytesMax) bytes")
        }
        // Parse over the UTF-8 bytes in place (copied only if not contiguous).
        var text = text
        let parsed = text.withUTF8 { bytes in
            var parser = JSONParser(bytes: bytes)
            return Result { () throws(EventDecodingError) in try parser.document() }
        }
        return try parsed.get()
    }
}

private struct JSONParser {
    let bytes: UnsafeBufferPointer<UInt8>
    var position = 0

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    func error(_ what: String) -> EventDecodingError {
        EventDecodingError("invalid JSON at byte \(position): \(what)")
    }

    var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    mutating func document() throws(EventDecodingError) -> JSONValue {
        let value = try value(depth: 0)
        skipSpace()
        guard position == bytes.count else { throw error("trailing characters") }
        return value
    }

    mutating func skipSpace() {
        while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { position += 1 }
    }

    mutating func expect(_ literal: StaticString) throws(EventDecodingError) {
        for index in 0..<literal.utf8CodeUnitCount {
            guard current == literal.utf8Start[index] else { throw error("expected \(literal)") }
            position += 1
        }
    }

    mutating func value(depth: Int) throws(EventDecodingError) -> JSONValue {
        guard depth < JSONValue.depthMax else { throw error("nested deeper than \(JSONValue.depthMax)") }
        skipSpace()
        guard let byte = current else { throw error("unexpected end") }
        switch byte {
        case UInt8(ascii: "n"): try expect("null"); return .null
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw error("unexpected character")
        }
    }

    mutating func array(depth: Int) throws(EventDecodingError) -> JSONValue {
        position += 1  // [
        var items: [JSONValue] = []
        skipSpace()
        if current == UInt8(ascii: "]") { position += 1; return .array(items) }
        while true {
            items.append(try value(depth: depth + 1))
            skipSpace()
            switch current {
            case UInt8(ascii: "]"): position += 1; return .array(items)
            case UInt8(ascii: ","): position += 1
            case nil: throw error("unterminated array")
            default: throw error("expected , or ]")
            }
        }
    }

    mutating func object(depth: Int) throws(EventDecodingError) -> JSONValue {
        position += 1  // {
        var fields: [(String, JSONValue)] = []
        var keys: Set<String> = []
        skipSpace()
        if current == UInt8(ascii: "}") { position += 1; return .object(fields) }
        while true {
            skipSpace()
            guard current == UInt8(ascii: "\"") else { throw error("expected a key") }
            let key = try string()
            // A repeated key is ambiguous (readers disagree on which wins).
            guard keys.insert(key).inserted else { throw error("duplicate key \(key)") }
            skipSpace()
            try expect(":")
            fields.append((key, try value(depth: depth + 1)))
            skipSpace()
            switch current {
            case UInt8(ascii: "}"): position += 1; return .object(fields)
            case UInt8(ascii: ","): position += 1
            case nil: throw error("unterminated object")
            default: throw error("expected , or }")
            }
        }
    }

    mutating func digits() -> Int {
        let start = position
        while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { position += 1 }
        return position - start
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, nothing looser.
    mutating func number() throws(EventDecodingError) -> JSONValue {
        let start = position
        if current == UInt8(ascii: "-") { position += 1 }
        let leadingZero = current == UInt8(ascii: "0")
        let integerDigits = digits()
        guard integerDigits > 0 else { throw error("expected a digit") }
        guard !(leadingZero && integerDigits > 1) else { throw error("leading zero") }
        var isInteger = true
        if current == UInt8(ascii: ".") {
            position += 1
            isInteger = false
            guard digits() > 0 else { throw error("expected a digit after .") }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            position += 1
            isInteger = false
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            guard digits() > 0 else { throw error("expected a digit in the exponent") }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        if isInteger, let value = Int64(text) { return .integer(value) }
        // The grammar is checked above, so this does not fail on valid JSON;
        // an integer beyond Int64 becomes an approximate double.
        guard let value = Double(text) else { throw error("bad number") }
        return .double(value)
    }

    mutating func hex4() throws(EventDecodingError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = current else { throw error("bad \\u escape") }
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error("bad \\u escape")
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }

    mutating func string() throws(EventDecodingError) -> String {
        position += 1  // opening quote
        var text = ""
        var chunkStart = position
        // Unescaped runs are copied whole. The input is valid UTF-8 (it came
        // from a String) and quotes and backslashes never occur inside a
        // multi-byte sequence, so runs split only on scalar boundaries.
        while let byte = current {
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                text += String(decoding: UnsafeBufferPointer(rebasing: bytes[chunkStart..<position]), as: UTF8.self)
                position += 1
                if byte == UInt8(ascii: "\"") { return text }
                text.unicodeScalars.append(try escape())
                chunkStart = position
            } else if byte < 0x20 {
                throw error("control character in string")
            } else {
                position += 1
            }
        }
        throw error("unterminated string")
    }

    /// The character after a backslash (already consumed).
    mutating func escape() throws(EventDecodingError) -> Unicode.Scalar {
        guard let byte = current else { throw error("unterminated string") }
        position += 1
        switch byte {
        case UInt8(ascii: "\""): return "\""
        case UInt8(ascii: "\\"): return "\\"
        case UInt8(ascii: "/"): return "/"
        case UInt8(ascii: "b"): return "\u{08}"
        case UInt8(ascii: "f"): return "\u{0C}"
        case UInt8(ascii: "n"): return "\n"
        case UInt8(ascii: "r"): return "\r"
        case UInt8(ascii: "t"): return "\t"
        case UInt8(ascii: "u"):
            var code = try hex4()
            if (0xD800..<0xDC00).contains(code) {
                // A high surrogate must be followed by an escaped low one.
                try expect("\\u")
                let low = try hex4()
                guard (0xDC00..<0xE000).contains(low) else { throw error("bad surrogate pair") }
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
            }
            // A lone low surrogate has no scalar.
            guard let scalar = Unicode.Scalar(code) else { throw error("lone surrogate") }
            return scalar
        default:
            throw error("bad escape")
        }
    }
}
