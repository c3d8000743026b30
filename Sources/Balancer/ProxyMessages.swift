import BalancerCore
import Foundation
import HTTPAPI
import NIOCore
import NIOHTTP1

/// A request as the proxy holds it: its parsed head, the head to send on,
/// and its whole body (commands are small; a retry sends them again).
struct ProxyRequest: Sendable {
    let method: String
    let target: String
    let path: Substring
    /// The request line and end-to-end headers, for the backend.
    let forwardHead: ByteBuffer
    let body: ByteBuffer?
    /// An HTTP/1.0 request ends its backend connection (the backend closes
    /// it after the answer), so the connection is not kept.
    let keepsBackendConnection: Bool
    /// GET or HEAD, without a body: may share a pipelined connection.
    var isSafe: Bool { (method == "GET" || method == "HEAD") && body == nil }

    /// `verbatimHead`: the head's bytes as received, sent on as they are
    /// when nothing is taken out of them (`forwardHead` empty; no copy).
    init(_ head: HTTPFraming.Request, verbatimHead: ByteBuffer?, body: ByteBuffer?) {
        method = head.method
        target = head.target
        path = head.path
        forwardHead = verbatimHead ?? ByteBuffer(bytes: head.forwardHead)
        self.body = body
        keepsBackendConnection = head.minorVersion == 1
    }
}

/// An answer as bytes on the wire: a backend's as it came (head and body),
/// or one the balancer makes.
struct ProxyResponse: Sendable {
    var status: Int
    var bytes: ByteBuffer

    static func make(_ status: Int, contentType: String, body: ByteBuffer, close: Bool = false, headers: [String: String] = [:]) -> ProxyResponse {
        let reason = HTTPResponseStatus(statusCode: status).reasonPhrase
        var bytes = ByteBuffer()
        bytes.writeString("HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.readableBytes)\r\n")
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { bytes.writeString("\(name): \(value)\r\n") }
        if close { bytes.writeString("Connection: close\r\n") }
        bytes.writeString("\r\n")
        var body = body
        bytes.writeBuffer(&body)
        return ProxyResponse(status: status, bytes: bytes)
    }

    /// The error shape of the API: {"error":{"code":...,"message":...}}.
    static func error(_ status: Int, _ code: String, _ message: String, close: Bool = false, headers: [String: String] = [:]) -> ProxyResponse {
        json(status, ["error": ["code": code, "message": message]], close: close, headers: headers)
    }

    static func json(_ status: Int, _ value: some Encodable, close: Bool = false, headers: [String: String] = [:]) -> ProxyResponse {
        let data = (try? JSONResponse.encoder.encode(value)) ?? Data(#"{"error":{"code":"internal","message":"response encoding failed"}}"#.utf8)
        return make(status, contentType: "application/json", body: ByteBuffer(bytes: data), close: close, headers: headers)
    }
}

/// Why an exchange with a backend failed before it answered.
struct BackendFailure: Error, CustomStringConvertible {
    let description: String
    /// No answer began: on a kept-alive connection this is most often the
    /// backend having closed it while idle, worth one try on a new one.
    var noAnswer = false
}
