import BalancerCore
import Testing

/// The proxy's view of HTTP/1.x: where messages end, on any split of the
/// bytes, and what is refused.
@Suite struct HTTPFramingTests {
    typealias Parse = HTTPFraming.Parse

    func request(_ text: String, bodyMax: Int = 1 << 20) -> Parse<HTTPFraming.Request> {
        Array(text.utf8).withUnsafeBytes { HTTPFraming.request($0, bodyBytesMax: bodyMax) }
    }

    func response(_ text: String, toHEAD: Bool = false) -> Parse<HTTPFraming.Response> {
        Array(text.utf8).withUnsafeBytes { HTTPFraming.response($0, toHEAD: toHEAD) }
    }

    func chunked(_ text: String) -> Parse<Int> {
        Array(text.utf8).withUnsafeBytes { HTTPFraming.chunkedBodyLength($0) }
    }

    @Test func aRequestHeadIsCompleteOnlyThroughItsBlankLineAtEverySplit() throws {
        let head = "POST /orders?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
        let text = head + "{\"id\":\"o1\"}"
        for cut in 0..<head.utf8.count {
            #expect(request(String(decoding: Array(text.utf8)[..<cut], as: UTF8.self)) == .incomplete, "cut \(cut)")
        }
        #expect(request(head) == request(text + "GET / HTTP/1.1\r\n"), "the body and what follows do not change the head")
        guard case .complete(let parsed) = request(text + "GET / HTTP/1.1\r\n") else {
            Issue.record("not complete")
            return
        }
        #expect(parsed.method == "POST" && parsed.target == "/orders?x=1" && parsed.path == "/orders")
        #expect(parsed.keepAlive && parsed.minorVersion == 1 && !parsed.bodyTooLarge && !parsed.expectContinue)
        #expect(parsed.headLength + parsed.bodyLength == text.utf8.count, "the next request's bytes are not taken")
        #expect(parsed.forwardHead.isEmpty, "nothing to take out: the head goes on as it came")
    }

    @Test func hopByHopHeadersStayWithTheClientConnection() throws {
        let text = "GET /p HTTP/1.1\r\nHost: a\r\nConnection: close\r\nKeep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\nX-Id: 7\r\n\r\n"
        guard case .complete(let parsed) = request(text) else {
            Issue.record("not complete")
            return
        }
        #expect(!parsed.keepAlive, "Connection: close is honoured")
        #expect(String(decoding: parsed.forwardHead, as: UTF8.self) == "GET /p HTTP/1.1\r\nHost: a\r\nX-Id: 7\r\n\r\n")
        guard case .complete(let old) = request("GET /p HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") else {
            Issue.record("not complete")
            return
        }
        #expect(!old.keepAlive && old.minorVersion == 0, "an HTTP/1.0 client is answered and closed")
        #expect(String(decoding: old.forwardHead, as: UTF8.self) == "GET /p HTTP/1.0\r\n\r\n")
        guard case .complete(let plain) = request("GET /p HTTP/1.0\r\nHost: a\r\n\r\n") else {
            Issue.record("not complete")
            return
        }
        #expect(plain.forwardHead.isEmpty && !plain.keepAlive)
    }

    @Test func badRequestsAreRefusedWithTheirStatus() {
        let cases: [(String, Int)] = [
            ("NOT HTTP AT ALL\r\n\r\n", 400),
            ("GET /p HTTP/2.0\r\n\r\n", 505),
            ("GET p HTTP/1.1\r\n\r\n", 400),
            ("GET /p HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
            ("GET /p HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
            ("POST /p HTTP/1.1\r\nContent-Length: x1\r\n\r\n", 400),
            ("POST /p HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
            ("POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
            ("GET /" + String(repeating: "a", count: 20_000), 431),
            // The whole head in one read, over the limit all the same.
            ("GET /p HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 17_000) + "\r\n\r\n", 431),
        ]
        for (text, status) in cases {
            guard case .invalid(let got, let message) = request(text) else {
                Issue.record("\(text.prefix(60)): not refused")
                continue
            }
            #expect(got == status && !message.isEmpty, "\(text.prefix(60))")
        }
    }

    @Test func aBodyOverTheLimitIsMarkedAndExpectIsNotSentOn() {
        guard case .complete(let big) = request("POST /p HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2000000\r\n\r\n") else {
            Issue.record("not complete")
            return
        }
        #expect(big.bodyTooLarge && big.bodyLength == 2_000_000 && big.expectContinue)
        #expect(String(decoding: big.forwardHead, as: UTF8.self) == "POST /p HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", "Expect is taken out")
    }

    @Test func answersAreFramedByLengthChunksOrClose() {
        #expect(response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            == .complete(.init(status: 200, headLength: 38, body: .length(5), keepAlive: true)))
        #expect(response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", toHEAD: true)
            == .complete(.init(status: 200, headLength: 38, body: .none, keepAlive: true)))
        #expect(response("HTTP/1.1 204 No Content\r\n\r\n") == .complete(.init(status: 204, headLength: 27, body: .none, keepAlive: true)))
        #expect(response("HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            == .complete(.init(status: 503, headLength: 83, body: .chunked, keepAlive: false)))
        #expect(response("HTTP/1.0 200 OK\r\n\r\n") == .complete(.init(status: 200, headLength: 19, body: .untilClose, keepAlive: false)))
        #expect(response("HTTP/1.1 200 OK\r\nContent-Le") == .incomplete)
        guard case .invalid = response("SSH-2.0-OpenSSH\r\n\r\n") else {
            Issue.record("not refused")
            return
        }
    }

    @Test func chunkedBodiesEndAfterTheLastChunkAndTrailers() {
        let body = "5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\n"
        for cut in 0..<body.utf8.count {
            #expect(chunked(String(decoding: Array(body.utf8)[..<cut], as: UTF8.self)) == .incomplete, "cut \(cut)")
        }
        #expect(chunked(body + "HTTP/1.1 200") == .complete(body.utf8.count))
        #expect(chunked("0\r\n\r\n") == .complete(5))
        guard case .invalid = chunked("zz\r\n") else {
            Issue.record("bad chunk size accepted")
            return
        }
        guard case .invalid = chunked("2\r\nabcd\r\n") else {
            Issue.record("chunk overrun accepted")
            return
        }
    }
}
