import Hummingbird
import OrderDomain

/// A request's JSON object with typed, path-named field access. Parsed by
/// the domain's strict parser (`JSONValue.parse`): `true` is not a number,
/// `1.5` is not an integer, a repeated key is refused, so a wrong type is
/// reported as such instead of coerced. (Foundation's JSONDecoder took about
/// 20 µs of a 2-core machine's time a request, most of a command's parsing.)
/// The balancer reads a new order's id with it too, as the API node does.
public struct RequestBody {
    static let bytesMax = 64 * 1024

    let fields: [String: JSONValue]
    let path: String

    init(fields: [String: JSONValue], path: String = "") {
        self.fields = fields
        self.path = path
    }

    /// An object's pairs (the parser refuses a repeated key).
    init(pairs: [(String, JSONValue)], path: String = "") {
        self.init(fields: Dictionary(pairs, uniquingKeysWith: { first, _ in first }), path: path)
    }

    /// Reads the whole body (at most `bytesMax`) and parses it as a JSON object.
    static func read(_ request: Request) async throws(APIError) -> RequestBody {
        try parse(await request.collectBody(upTo: bytesMax))
    }

    /// Like `read`, for routes whose body may be absent.
    static func readIfPresent(_ request: Request) async throws(APIError) -> RequestBody? {
        let bytes = try await request.collectBody(upTo: bytesMax)
        return bytes.readableBytes == 0 ? nil : try parse(bytes)
    }

    public static func parse(_ bytes: ByteBuffer) throws(APIError) -> RequestBody {
        guard bytes.readableBytes > 0 else { throw .badRequest("malformed_json", "the request body is empty; a JSON object is expected") }
        // Invalid UTF-8 is refused, not repaired: the parser reads bytes that
        // came from a String.
        guard let text = String(validating: bytes.readableBytesView, as: UTF8.self), let value = try? JSONValue.parse(text) else {
            throw .badRequest("malformed_json", "the request body is not valid JSON")
        }
        guard case .object(let pairs) = value else {
            throw .badRequest("malformed_json", "the request body must be a JSON object, not \(Self.typeName(value))")
        }
        return RequestBody(pairs: pairs)
    }

    static func typeName(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool: return "a boolean"
        case .integer, .double: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    private func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    private func required(_ key: String) throws(APIError) -> JSONValue {
        guard let value = fields[key], !isNull(value) else {
            throw .badRequest("missing_field", "field '\(name(key))' is required")
        }
        return value
    }

    private func isNull(_ value: JSONValue) -> Bool {
        if case .null = value { return true }
        return false
    }

    public func string(_ key: String) throws(APIError) -> String {
        let value = try required(key)
        guard case .string(let text) = value else {
            throw .badRequest("wrong_type", "field '\(name(key))' must be a string, not \(Self.typeName(value))")
        }
        return text
    }

    func optionalString(_ key: String) throws(APIError) -> String? {
        guard let value = fields[key], !isNull(value) else { return nil }
        return try string(key)
    }

    func integer(_ key: String) throws(APIError) -> Int64 {
        let value = try required(key)
        switch value {
        case .integer(let number):
            return number
        case .double(let number):
            // JSON has one number type: 2.0 is the integer 2 (as JSON Schema
            // says), 2.5 is not.
            if let whole = Int64(exactly: number) { return whole }
            throw .badRequest("wrong_type", "field '\(name(key))' must be an integer, not \(number)")
        default:
            throw .badRequest("wrong_type", "field '\(name(key))' must be an integer, not \(Self.typeName(value))")
        }
    }

    func id(_ key: String) throws(APIError) -> ClientID {
        let text = try string(key)
        guard let id = ClientID(text) else {
            throw .badRequest("invalid_id", "field '\(name(key))' must be 1-64 characters of A-Z a-z 0-9 . _ -")
        }
        return id
    }

    func objects(_ key: String) throws(APIError) -> [RequestBody] {
        let value = try required(key)
        guard case .array(let items) = value else {
            throw .badRequest("wrong_type", "field '\(name(key))' must be an array, not \(Self.typeName(value))")
        }
        var bodies: [RequestBody] = []
        for (index, item) in items.enumerated() {
            guard case .object(let pairs) = item else {
                throw .badRequest("wrong_type", "field '\(name(key))[\(index)]' must be an object, not \(Self.typeName(item))")
            }
            bodies.append(RequestBody(pairs: pairs, path: "\(name(key))[\(index)]"))
        }
        return bodies
    }
}

/// Path parameters and query values, validated.
enum PathInput {
    static func orderID(_ context: some RequestContext) throws(APIError) -> ClientID {
        let raw = context.parameters.get("id") ?? ""
        guard let id = ClientID(raw) else {
            throw .badRequest("invalid_id", "order id must be 1-64 characters of A-Z a-z 0-9 . _ -")
        }
        return id
    }
}

extension Request {
    /// The body, at most `bytesMax` bytes; a longer one is a 413 in the
    /// API's error shape.
    public func collectBody(upTo bytesMax: Int) async throws(APIError) -> ByteBuffer {
        do {
            return try await body.collect(upTo: bytesMax)
        } catch {
            throw APIError(.contentTooLarge, "body_too_large", "the request body exceeds \(bytesMax) bytes")
        }
    }
}
