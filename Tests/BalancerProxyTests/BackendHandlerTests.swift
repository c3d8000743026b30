import NIOCore
import NIOEmbedded
import Testing

@testable import Balancer

/// The backend side of the proxy with pipelined requests: answers go to
/// their requests in order, however the bytes are split, and whatever the
/// connection does wrong fails every answer still owed, each marked for a
/// retry when none of it came.
@Suite struct BackendHandlerTests {
    typealias Outcome = Result<ProxyResponse, BackendFailure>

    final class Recorder {
        var outcomes: [(Int, Outcome)] = []
        func completion(_ index: Int) -> BackendHandler.Completion { { self.outcomes.append((index, $0)) } }
    }

    static func answer(_ body: String, close: Bool = false) -> String {
        "HTTP/1.1 200 OK\r\nContent-Length: \(body.utf8.count)\r\n" + (close ? "Connection: close\r\n" : "") + "\r\n" + body
    }

    static func channel() throws -> (EmbeddedChannel, BackendHandler) {
        let handler = BackendHandler()
        let channel = EmbeddedChannel(handler: handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, handler)
    }

    static func body(_ outcome: Outcome) -> String? {
        guard case .success(let response) = outcome else { return nil }
        let text = String(buffer: response.bytes)
        return text.components(separatedBy: "\r\n\r\n").last
    }

    @Test(arguments: [1, 3, 7, 1000])
    func pipelinedAnswersReachTheirRequestsInOrderAtEverySplit(chunk: Int) throws {
        let (channel, handler) = try Self.channel()
        let recorder = Recorder()
        for index in 0..<3 { handler.expect(toHEAD: false, safe: true, recorder.completion(index)) }
        #expect(handler.waiting == 3)
        let bytes = Array((Self.answer("first") + Self.answer("second") + Self.answer("third")).utf8)
        var start = 0
        while start < bytes.count {
            try channel.writeInbound(ByteBuffer(bytes: bytes[start..<min(start + chunk, bytes.count)]))
            start += chunk
        }
        #expect(recorder.outcomes.map(\.0) == [0, 1, 2])
        #expect(recorder.outcomes.map { Self.body($0.1) } == ["first", "second", "third"])
        #expect(handler.waiting == 0 && handler.reusable)
        _ = try? channel.finish()
    }

    @Test func aConnectionClosedAfterOneAnswerFailsTheRestForARetry() throws {
        let (channel, handler) = try Self.channel()
        let recorder = Recorder()
        for index in 0..<3 { handler.expect(toHEAD: false, safe: true, recorder.completion(index)) }
        try channel.writeInbound(ByteBuffer(string: Self.answer("only", close: true)))
        #expect(Self.body(recorder.outcomes[0].1) == "only")
        #expect(recorder.outcomes.count == 3)
        for (_, outcome) in recorder.outcomes.dropFirst() {
            guard case .failure(let failure) = outcome else { Issue.record("expected a failure"); continue }
            #expect(failure.noAnswer, "nothing of it came: it may be sent again")
        }
        _ = try? channel.finish()
    }

    @Test func aBackendThatDiesMidAnswerFailsItAndTheRestDifferently() throws {
        let (channel, handler) = try Self.channel()
        let recorder = Recorder()
        for index in 0..<2 { handler.expect(toHEAD: false, safe: true, recorder.completion(index)) }
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart"))
        channel.pipeline.fireChannelInactive()
        guard recorder.outcomes.count == 2, case .failure(let first) = recorder.outcomes[0].1, case .failure(let second) = recorder.outcomes[1].1 else {
            Issue.record("both must fail: \(recorder.outcomes)")
            return
        }
        #expect(!first.noAnswer, "part of the first answer came: the request may have run")
        #expect(second.noAnswer)
        _ = try? channel.finish()
    }

    @Test func bytesNobodyAskedForCloseTheConnection() throws {
        let (channel, handler) = try Self.channel()
        let recorder = Recorder()
        handler.expect(toHEAD: false, safe: true, recorder.completion(0))
        try channel.writeInbound(ByteBuffer(string: Self.answer("mine") + Self.answer("extra")))
        #expect(Self.body(recorder.outcomes[0].1) == "mine")
        #expect(!channel.isActive, "more than the answers owed: the connection is dropped")
        _ = try? channel.finish()
    }

    @Test func aHEADAnswerHasNoBodyEvenWithALength() throws {
        let (channel, handler) = try Self.channel()
        let recorder = Recorder()
        handler.expect(toHEAD: true, safe: true, recorder.completion(0))
        handler.expect(toHEAD: false, safe: true, recorder.completion(1))
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + Self.answer("body")))
        #expect(recorder.outcomes.map(\.0) == [0, 1])
        #expect(Self.body(recorder.outcomes[1].1) == "body")
        _ = try? channel.finish()
    }
}
