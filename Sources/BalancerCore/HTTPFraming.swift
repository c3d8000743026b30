/// Just enough of HTTP/1.x for a proxy that moves bytes: where a request or
/// an answer ends, what a request asks for, and the head to send on to a
/// backend. Pure: works on the bytes received so far, any split of them.
public enum HTTPFraming {
    public enum Parse<Value: Equatable>: Equatable {
        /// More bytes are needed.
        case incomplete
        case complete(Value)
        /// Not acceptable HTTP: answer `status` with `message`, then close.
        case invalid(status: Int, message: String)
    }

    public struct Request: Equatable {
        public var method: String
        /// The request target as sent (path and query).
        public var target: String
        /// 0 for HTTP/1.0, 1 for HTTP/1.1.
        public var minorVersion: Int
        /// The client keeps the connection after the answer.
        public var keepAlive: Bool
        /// Bytes of the head, through the blank line.
        public var headLength: Int
        /// Bytes of body after the head (Content-Length).
        public var bodyLength: Int
        /// Over the limit: the proxy reads the body past and refuses it (413).
        public var bodyTooLarge: Bool
        /// The client waits for "100 Continue" before it sends the body.
        public var expectContinue: Bool
        /// The head to send to a backend: the request line and every header
        /// but the hop-by-hop ones and Content-Length, then Content-Length
        /// when there is a body. The backend connection is kept alive.
        /// Empty when the head can be sent as it came (`headLength` bytes).
        public var forwardHead: [UInt8]

        public var path: Substring { target[..<(target.firstIndex(of: "?") ?? target.endIndex)] }
    }

    public enum BodyFraming: Equatable {
        case none
        case length(Int)
        case chunked
        /// HTTP/1.0 style: the body ends when the backend closes.
        case untilClose
    }

    public struct Response: Equatable {
        public var status: Int
        public var headLength: Int
        public var body: BodyFraming
        /// The backend keeps the connection after this answer.
        public var keepAlive: Bool

        public init(status: Int, headLength: Int, body: BodyFraming, keepAlive: Bool) {
            self.status = status
            self.headLength = headLength
            self.body = body
            self.keepAlive = keepAlive
        }
    }

    public static let headBytesMax = 16 * 1024

    /// Parses a request head at the start of `bytes`: complete once the head
    /// is there (its body, `bodyLength` bytes, follows).
    public static func request(_ bytes: UnsafeRawBufferPointer, bodyBytesMax: Int) -> Parse<Request> {
        // Over the limit whether the head came in one read or several.
        guard let headEnd = headEnd(bytes), headEnd <= headBytesMax else {
            return bytes.count > headBytesMax ? .invalid(status: 431, message: "the request head exceeds \(headBytesMax) bytes") : .incomplete
        }
        var lines = Lines(bytes: bytes, end: headEnd)
        guard let requestLine = lines.next() else { return .invalid(status: 400, message: "no request line") }
        let parts = requestLine.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy(isTokenByte), parts[1].first == UInt8(ascii: "/"),
            parts[1].allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        else { return .invalid(status: 400, message: "a request line is METHOD /target HTTP/1.1") }
        let minorVersion: Int
        if parts[2].elementsEqual("HTTP/1.1".utf8) {
            minorVersion = 1
        } else if parts[2].elementsEqual("HTTP/1.0".utf8) {
            minorVersion = 0
        } else {
            return .invalid(status: 505, message: "only HTTP/1.0 and HTTP/1.1 are served")
        }
        let method = String(decoding: parts[0], as: UTF8.self)
        let headerLines = lines
        var contentLength: Int?
        var close = minorVersion == 0
        var expectContinue = false
        /// A header the backend must not get was seen: the head is rebuilt.
        var dropsHeaders = false
        while let line = lines.next() {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex,
                line[line.startIndex..<colon].allSatisfy(isTokenByte)
            else { return .invalid(status: 400, message: "a header line is Name: value") }
            let name = line[line.startIndex..<colon]
            let value = trimmed(line[(colon + 1)...])
            if equalsIgnoringCase(name, "content-length") {
                guard let length = decimal(value), contentLength == nil || contentLength == length else {
                    return .invalid(status: 400, message: "Content-Length is not one number")
                }
                contentLength = length
                continue
            }
            dropsHeaders = dropsHeaders || staysWithClient(name)
            if equalsIgnoringCase(name, "transfer-encoding") {
                return .invalid(status: 411, message: "a request body needs Content-Length (chunked request bodies are not proxied)")
            }
            if equalsIgnoringCase(name, "connection") {
                for token in value.split(separator: UInt8(ascii: ",")) {
                    let token = trimmed(token[...])
                    if equalsIgnoringCase(token, "close") { close = true }
                    if equalsIgnoringCase(token, "keep-alive") && minorVersion == 0 { close = false }
                }
                continue
            }
            if equalsIgnoringCase(name, "expect") {
                // The proxy has the whole body before it sends anything on.
                expectContinue = equalsIgnoringCase(value, "100-continue")
                continue
            }
        }
        let bodyLength = contentLength ?? 0
        var forward: [UInt8] = []
        if dropsHeaders {
            forward.reserveCapacity(headEnd + 24)
            forward += parts[0]
            forward.append(UInt8(ascii: " "))
            forward += parts[1]
            forward += minorVersion == 1 ? Array(" HTTP/1.1\r\n".utf8) : Array(" HTTP/1.0\r\n".utf8)
            var kept = headerLines
            while let line = kept.next() {
                guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
                let name = line[line.startIndex..<colon]
                if equalsIgnoringCase(name, "content-length") || staysWithClient(name) { continue }
                forward += line
                forward += [13, 10]
            }
            if let contentLength { forward += Array("Content-Length: \(contentLength)\r\n".utf8) }
            forward += [13, 10]
        }
        // An HTTP/1.0 client is answered and the connection closed: its
        // keep-alive would need the answer's head rewritten.
        return .complete(Request(
            method: method, target: String(decoding: parts[1], as: UTF8.self), minorVersion: minorVersion,
            keepAlive: !close && minorVersion == 1, headLength: headEnd, bodyLength: bodyLength,
            bodyTooLarge: bodyLength > bodyBytesMax, expectContinue: expectContinue, forwardHead: forward))
    }

    /// Parses an answer's head at the start of `bytes`.
    public static func response(_ bytes: UnsafeRawBufferPointer, toHEAD: Bool) -> Parse<Response> {
        guard let headEnd = headEnd(bytes) else {
            return bytes.count > headBytesMax ? .invalid(status: 502, message: "the backend's answer head is too long") : .incomplete
        }
        var lines = Lines(bytes: bytes, end: headEnd)
        guard let statusLine = lines.next(), statusLine.count >= 12, statusLine.starts(with: "HTTP/1.".utf8),
            let status = decimal(statusLine[(statusLine.startIndex + 9)..<(statusLine.startIndex + 12)]), (100...999).contains(status)
        else { return .invalid(status: 502, message: "the backend's answer is not HTTP") }
        let http10 = statusLine[statusLine.startIndex + 7] == UInt8(ascii: "0")
        var keepAlive = !http10
        var length: Int?
        var chunked = false
        while let line = lines.next() {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return .invalid(status: 502, message: "the backend's answer has a bad header") }
            let name = line[line.startIndex..<colon]
            let value = trimmed(line[(colon + 1)...])
            if equalsIgnoringCase(name, "content-length") {
                guard let parsed = decimal(value) else { return .invalid(status: 502, message: "the backend's Content-Length is not a number") }
                length = parsed
            } else if equalsIgnoringCase(name, "transfer-encoding") {
                chunked = value.split(separator: UInt8(ascii: ",")).last.map { equalsIgnoringCase(trimmed($0[...]), "chunked") } ?? false
            } else if equalsIgnoringCase(name, "connection") {
                for token in value.split(separator: UInt8(ascii: ",")) {
                    let token = trimmed(token[...])
                    if equalsIgnoringCase(token, "close") { keepAlive = false }
                    if equalsIgnoringCase(token, "keep-alive") && http10 { keepAlive = true }
                }
            }
        }
        let body: BodyFraming
        if toHEAD || status < 200 || status == 204 || status == 304 {
            body = .none
        } else if chunked {
            body = .chunked
        } else if let length {
            body = length == 0 ? .none : .length(length)
        } else {
            body = .untilClose
            keepAlive = false
        }
        return .complete(Response(status: status, headLength: headEnd, body: body, keepAlive: keepAlive))
    }

    /// The length of a chunked body at the start of `bytes`, through its
    /// last chunk and trailers.
    public static func chunkedBodyLength(_ bytes: UnsafeRawBufferPointer) -> Parse<Int> {
        var position = 0
        while true {
            guard let lineEnd = find(bytes, from: position, [13, 10]) else { return .incomplete }
            var size = 0
            var digits = 0
            for byte in bytes[position..<lineEnd] {
                guard let digit = hexValue(byte) else { break }
                size = size * 16 + digit
                digits += 1
                guard size <= 1 << 30 else { return .invalid(status: 502, message: "a chunk of the backend's answer is too large") }
            }
            guard digits > 0 else { return .invalid(status: 502, message: "the backend's answer has a bad chunk") }
            position = lineEnd + 2
            if size == 0 {
                // Trailers, then a blank line.
                while true {
                    guard let end = find(bytes, from: position, [13, 10]) else { return .incomplete }
                    let blank = end == position
                    position = end + 2
                    if blank { return .complete(position) }
                }
            }
            guard bytes.count >= position + size + 2 else { return .incomplete }
            guard bytes[position + size] == 13, bytes[position + size + 1] == 10 else {
                return .invalid(status: 502, message: "the backend's answer has a bad chunk")
            }
            position += size + 2
        }
    }

    // MARK: Helpers

    /// The index just past "\r\n\r\n", if the head is complete.
    static func headEnd(_ bytes: UnsafeRawBufferPointer) -> Int? {
        find(bytes, from: 0, [13, 10, 13, 10]).map { $0 + 4 }
    }

    static func find(_ bytes: UnsafeRawBufferPointer, from start: Int, _ pattern: [UInt8]) -> Int? {
        guard bytes.count >= pattern.count else { return nil }
        var index = start
        let last = bytes.count - pattern.count
        let first = pattern[0]
        while index <= last {
            if bytes[index] == first {
                var matched = true
                for offset in 1..<pattern.count where bytes[index + offset] != pattern[offset] {
                    matched = false
                    break
                }
                if matched { return index }
            }
            index += 1
        }
        return nil
    }

    /// The lines of a head (without their CRLF), up to its blank line.
    struct Lines {
        let bytes: UnsafeRawBufferPointer
        let end: Int
        var position = 0

        mutating func next() -> Slice<UnsafeRawBufferPointer>? {
            guard let lineEnd = HTTPFraming.find(bytes, from: position, [13, 10]), lineEnd < end - 2 else { return nil }
            defer { position = lineEnd + 2 }
            return bytes[position..<lineEnd]
        }
    }

    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): return true
        default: return Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
        }
    }

    static func trimmed(_ value: Slice<UnsafeRawBufferPointer>) -> Slice<UnsafeRawBufferPointer> {
        var start = value.startIndex
        var end = value.endIndex
        while start < end, value.base[start] == 32 || value.base[start] == 9 { start += 1 }
        while end > start, value.base[end - 1] == 32 || value.base[end - 1] == 9 { end -= 1 }
        return value.base[start..<end]
    }

    static func equalsIgnoringCase(_ bytes: Slice<UnsafeRawBufferPointer>, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        return lowercase.withUTF8Buffer { expected in
            var index = 0
            for byte in bytes {
                let lower = byte >= 65 && byte <= 90 ? byte | 0x20 : byte
                if lower != expected[index] { return false }
                index += 1
            }
            return true
        }
    }

    /// A request header the backend does not get: the hop-by-hop ones, and
    /// Expect (the proxy holds the whole body before it sends anything on).
    static func staysWithClient(_ name: Slice<UnsafeRawBufferPointer>) -> Bool {
        equalsIgnoringCase(name, "connection") || equalsIgnoringCase(name, "expect") || isHopByHop(name)
    }

    static func isHopByHop(_ name: Slice<UnsafeRawBufferPointer>) -> Bool {
        equalsIgnoringCase(name, "keep-alive") || equalsIgnoringCase(name, "proxy-connection") || equalsIgnoringCase(name, "te")
            || equalsIgnoringCase(name, "trailer") || equalsIgnoringCase(name, "upgrade")
    }

    /// A non-negative decimal number of at most 15 digits.
    static func decimal(_ bytes: Slice<UnsafeRawBufferPointer>) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 15 else { return nil }
        var value = 0
        for byte in bytes {
            guard byte >= 48, byte <= 57 else { return nil }
            value = value * 10 + Int(byte - 48)
        }
        return value
    }

    static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case 48...57: return Int(byte - 48)
        case 97...102: return Int(byte - 87)
        case 65...70: return Int(byte - 55)
        default: return nil
        }
    }
}
