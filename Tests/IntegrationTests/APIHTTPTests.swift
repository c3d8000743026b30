import Foundation
import Testing

/// The API node's HTTP/1.1 server (`HTTPServerBuilder.http1Direct`) on a
/// real socket: what a client library hides (pipelining, HTTP/1.0,
/// `Expect: 100-continue`, bad framing) answered as HTTP says.
@Suite(.serialized) struct APIHTTPTests {
    static let order = #"{"id":"%@","customer":"c","lines":[{"sku":"SKU-00001","qty":1}]}"#

    static func post(_ id: String, extra: String = "") -> String {
        let body = String(format: order, id)
        return "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\(extra)Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    /// Status lines in the order they came (an answer follows the body
    /// before it without a line break).
    static func statuses(_ text: String) -> [String] {
        text.components(separatedBy: "HTTP/1.1 ").dropFirst().map { "HTTP/1.1 " + ($0.components(separatedBy: "\r\n").first ?? "") }
    }

    @Test func requestsAreAnsweredInOrderAndBadFramingIsRefusedWithAReason() async throws {
        let folder = try TemporaryFolder()
        let node = try OrderlyProcess(
            ["node", "--id", "solo", "--data", folder.path, "--http", "127.0.0.1:0"], stderrPath: folder.file("node.log"))
        defer { node.stop(signal: SIGKILL) }
        let address = try await node.waitReady()
        let host = String(address.split(separator: ":")[0])
        let port = Int(address.split(separator: ":")[1])!

        // Three pipelined requests in one write: each answered, in order,
        // and the connection closed after the one that asks for it.
        let pipelined = try RawHTTP.exchange(
            host: host, port: port,
            Self.post("pipe-1") + "GET /orders/pipe-1 HTTP/1.1\r\nHost: x\r\n\r\n" + "GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(Self.statuses(pipelined) == ["HTTP/1.1 201 Created", "HTTP/1.1 200 OK", "HTTP/1.1 200 OK"], "\(pipelined)")
        #expect(pipelined.contains(#""id":"pipe-1""#) && pipelined.contains(#"{"status":"live"}"#), "\(pipelined)")
        #expect(pipelined.lowercased().contains("connection: close"), "\(pipelined)")

        // HTTP/1.0: answered, then closed.
        let old = try RawHTTP.exchange(host: host, port: port, "GET /orders/pipe-1 HTTP/1.0\r\n\r\n")
        #expect(Self.statuses(old) == ["HTTP/1.1 200 OK"], "\(old)")

        // A client that waits for 100 Continue before its body.
        let continued = try RawHTTP.exchange(host: host, port: port, Self.post("pipe-2", extra: "Expect: 100-continue\r\nConnection: close\r\n"))
        #expect(Self.statuses(continued).last == "HTTP/1.1 201 Created", "\(continued)")

        // Bad framing: a reason in the API's error shape, then the
        // connection closes; what came before it is still answered.
        let chunked = try RawHTTP.exchange(
            host: host, port: port, "POST /orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
        #expect(Self.statuses(chunked) == ["HTTP/1.1 411 Length Required"], "\(chunked)")
        #expect(chunked.contains(#""code":"length_required""#), "\(chunked)")
        let malformed = try RawHTTP.exchange(host: host, port: port, "GET /health/live HTTP/1.1\r\nHost: x\r\n\r\nNOT HTTP\r\n\r\n")
        #expect(Self.statuses(malformed) == ["HTTP/1.1 200 OK", "HTTP/1.1 400 Bad Request"], "\(malformed)")
        #expect(malformed.contains(#""code":"malformed_http""#), "\(malformed)")
        let version = try RawHTTP.exchange(host: host, port: port, "GET /health/live HTTP/2.0\r\n\r\n")
        #expect(version.hasPrefix("HTTP/1.1 505 HTTP Version Not Supported\r\n") && version.contains(#""code":"http_version""#), "\(version)")
        let huge = try RawHTTP.exchange(host: host, port: port, "POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n{")
        #expect(Self.statuses(huge) == ["HTTP/1.1 413 Content Too Large"], "\(huge)")

        // None of it changed anything: the order placed first is as it was,
        // and the refused ones wrote nothing.
        let after = try RawHTTP.exchange(host: host, port: port, "GET /orders/pipe-1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(after.contains(#""version":1"#), "\(after)")
    }
}
