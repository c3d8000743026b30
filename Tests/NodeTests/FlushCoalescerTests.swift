import NIOCore
import NIOEmbedded
import Testing

@testable import Node

/// Counts the flushes that pass it, toward the socket.
private final class FlushCounter: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    var flushes = 0

    func flush(context: ChannelHandlerContext) {
        flushes += 1
        context.flush()
    }
}

@Suite struct FlushCoalescerTests {
    @Test func messagesFlushedInOneTurnOfTheLoopLeaveTogetherAndNoneIsHeldBack() throws {
        let channel = EmbeddedChannel()
        let counter = FlushCounter()
        try channel.pipeline.syncOperations.addHandlers([counter, FlushCoalescer()])

        for text in ["one", "two", "three"] {
            channel.writeAndFlush(ByteBuffer(string: text), promise: nil)
        }
        // Nothing has left yet: the flush waits for the jobs queued before it.
        #expect(counter.flushes == 0)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)

        channel.embeddedEventLoop.run()
        #expect(counter.flushes == 1)
        var left: [String] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { left.append(String(buffer: buffer)) }
        #expect(left == ["one", "two", "three"])

        // A write after the coalesced flush gets a flush of its own.
        channel.writeAndFlush(ByteBuffer(string: "four"), promise: nil)
        channel.embeddedEventLoop.run()
        #expect(counter.flushes == 2)
        #expect(try channel.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) } == "four")
        _ = try channel.finish()
    }
}
