import NIOCore

/// Turns the flushes asked on a peer connection while the event loop runs
/// its queued jobs into one flush after them: the replies a batch of
/// acknowledgements releases, or the forwards of many clients' requests,
/// then leave in one TLS record and one `write` instead of one each.
/// Every write still leaves: a flush asked always schedules one unless one
/// is already scheduled, and that one runs after the write that asked.
/// Sits between TLS (below) and the frame encoder (above).
final class FlushCoalescer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// A flush is scheduled and has not run yet. Touched on the channel's
    /// event loop only.
    private var scheduled = false

    func flush(context: ChannelHandlerContext) {
        guard !scheduled else { return }
        scheduled = true
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (coalescer, context) = loopBound.value
            coalescer.scheduled = false
            context.flush()
        }
    }
}
