import Foundation
import Hummingbird
import OrderDomain

/// An answer that is not a success: `{"error":{"code","message"}}` with a
/// status. Every refusal of bad input goes through here, so none is a 500.
public struct APIError: Error, Sendable, Equatable {
    public let status: HTTPResponse.Status
    public let code: String
    public let message: String

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public static func badRequest(_ code: String, _ message: String) -> APIError { APIError(.badRequest, code, message) }

    static func from(_ error: DomainError) -> APIError {
        switch error {
        case .invalid(let code, let message): return APIError(.badRequest, code, message)
        case .notFound(let message): return APIError(.notFound, "not_found", message)
        case .conflict(let code, let message): return APIError(.conflict, code, message)
        }
    }

    public func response() -> Response {
        let body: [String: [String: String]] = ["error": ["code": code, "message": message]]
        return JSONResponse.make(status: status, body)
    }
}

public enum JSONResponse {
    /// Sorted keys, slashes as they are: every JSON answer of every role.
    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static func make(status: HTTPResponse.Status, _ value: some JSONRepresentable) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: value.json.serializedBytes())))
    }

    /// A JSON value as it is (objects keep their key order: give keys
    /// sorted). Health probes come many a second from every balancer and
    /// orchestrator: Foundation's encoder was a tenth of their cost.
    static func make(status: HTTPResponse.Status, json: JSONValue) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: json.serializedBytes())))
    }

    public static func make(status: HTTPResponse.Status, _ value: some Encodable) -> Response {
        // Encoding our own response types cannot fail; a failure here is a bug.
        let data = (try? encoder.encode(value)) ?? Data(#"{"error":{"code":"internal","message":"response encoding failed"}}"#.utf8)
        return Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
