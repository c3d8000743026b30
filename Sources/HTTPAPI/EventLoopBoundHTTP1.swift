import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import Node

extension HTTPServerBuilder {
    /// HTTP/1.1 whose connections run their requests on their own event
    /// loop: each connection's task prefers that loop as its task executor,
    /// so a request is read, handled and answered on one thread. With
    /// Hummingbird's default every request hops from the channel's loop to
    /// the global executor and its answer hops back (a wake-up of each side),
    /// which was about a third of a small command's cost here.
    public static func http1OnEventLoops(configuration: HTTP1Channel.Configuration = .init()) -> HTTPServerBuilder {
        .init { responder in
            EventLoopBoundChannel(inner: HTTP1Channel(responder: responder, configuration: configuration))
        }
    }
}

/// `inner`, with each connection's handling preferring its channel's
/// event loop.
struct EventLoopBoundChannel<Inner: ServerChildChannel>: ServerChildChannel {
    typealias Value = Inner.Value
    let inner: Inner

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        inner.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await withTaskExecutorPreference(EventLoopTaskExecutor(value.channel.eventLoop)) {
            await inner.handle(value: value, logger: logger)
        }
    }
}
