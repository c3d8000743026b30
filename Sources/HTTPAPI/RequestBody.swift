import Foundation
import Hummingbird
import OrderDomain

/// Any JSON value, decoded strictly: `true` is not a number, `1.5` is not an
/// integer, so a wrong type is reported as such instead of coerced.
enum JSONInput: Decodable, Sendable {
    case null
    case bool(Bool)
    case integer(Int64)
    case double(Double)
    case string(String)
    case array([JSONInput])
    case object([String: JSONInput])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONInput].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONInput].self))
        }
    }

    var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .integer, .double: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

/// A request's JSON object with typed, path-named field access.
struct RequestBody {
    static let bytesMax = 64 * 1024

    let fields: [String: JSONInput]
    let path: String

    init(fields: [String: JSONInput], path: String = "") {
        self.fields = fields
        self.path = path
    }

    /// Reads the whole body (at most `bytesMax`) and parses it as a JSON object.
    static func read(_ request: Request) async throws(APIError) -> RequestBody {
        try parse(await collect(request))
    }

    /// Like `read`, for routes whose body may be absent.
    static func readIfPresent(_ request: Request) async throws(APIError) -> RequestBody? {
        let data = try await collect(request)
        return data.isEmpty ? nil : try parse(data)
    }

    private static func collect(_ request: Request) async throws(APIError) -> Data {
        do {
            return Data(try await request.body.collect(upTo: bytesMax).readableBytesView)
        } catch {
            throw APIError(.contentTooLarge, "body_too_large", "the request body exceeds \(bytesMax) bytes")
        }
    }

    static func parse(_ data: Data) throws(APIError) -> RequestBody {
        guard !data.isEmpty else { throw .badRequest("malformed_json", "the request body is empty; a JSON object is expected") }
        let value: JSONInput
        do {
            value = try JSONDecoder().decode(JSONInput.self, from: data)
        } catch {
            throw .badRequest("malformed_json", "the request body is not valid JSON")
        }
        guard case .object(let fields) = value else {
            throw .badRequest("malformed_json", "the request body must be a JSON object, not \(value.typeName)")
        }
        return RequestBody(fields: fields)
    }

    private func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    private func required(_ key: String) throws(APIError) -> JSONInput {
        guard let value = fields[key], !isNull(value) else {
            throw .badRequest("missing_field", "field '\(name(key))' is required")
        }
        return value
    }

    private func isNull(_ value: JSONInput) -> Bool {
        if case .null = value { return true }
        return false
    }

    func string(_ key: String) throws(APIError) -> String {
        let value = try required(key)
        guard case .string(let text) = value else {
            throw .badRequest("wrong_type", "field '\(name(key))' must be a string, not \(value.typeName)")
        }
        return text
    }

    func optionalString(_ key: String) throws(APIError) -> String? {
        guard let value = fields[key], !isNull(value) else { return nil }
        return try string(key)
    }

    func integer(_ key: String) throws(APIError) -> Int64 {
        let value = try required(key)
        guard case .integer(let number) = value else {
            throw .badRequest("wrong_type", "field '\(name(key))' must be an integer, not \(value.typeName)")
        }
        return number
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
            throw .badRequest("wrong_type", "field '\(name(key))' must be an array, not \(value.typeName)")
        }
        var bodies: [RequestBody] = []
        for (index, item) in items.enumerated() {
            guard case .object(let fields) = item else {
                throw .badRequest("wrong_type", "field '\(name(key))[\(index)]' must be an object, not \(item.typeName)")
            }
            bodies.append(RequestBody(fields: fields, path: "\(name(key))[\(index)]"))
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
