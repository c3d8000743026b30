import BalancerCore
import NIOCore
import NIOPosix

/// A closed-loop HTTP/1.1 load generator for the benchmarks, as lean as
/// wrk: each client keeps one connection per target, sends a request,
/// reads its whole answer (framed by `HTTPFraming`), records the latency
/// and sends its next request, all in callbacks on one event loop. A
/// general HTTP client costs the machine about 100 µs a request here,
/// which on two shared cores would measure the client, not the cluster.
enum HTTPLoad {
    struct Request {
        /// Index into the targets.
        var target: Int
        var method: String
        var path: String
        var body: String
    }

    struct Outcome: Sendable {
        var seconds: Double
        var latenciesMs: [Double]
        /// Answers by status code.
        var statuses: [Int: Int]
        /// The first answer outside 2xx, or a failed connection.
        var firstFailure: String?
    }

    /// Runs `clients` loops of `perClient` requests against `targets`
    /// (`host:port`). `make(client, index)` gives each request.
    static func run(
        targets: [String], clients: Int, perClient: Int, threads: Int = 1,
        make: @escaping @Sendable (_ client: Int, _ index: Int) -> Request
    ) async throws -> Outcome {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let start = ContinuousClock.now
        let results: [LoadClient.Result]
        do {
            results = try await clientLoops(group: group, targets: targets, clients: clients, perClient: perClient, make: make)
            try? await group.shutdownGracefully()
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        var outcome = Outcome(seconds: BenchSupport.seconds(since: start), latenciesMs: [], statuses: [:], firstFailure: nil)
        for result in results {
            outcome.latenciesMs += result.latenciesMs
            outcome.statuses.merge(result.statuses, uniquingKeysWith: +)
            outcome.firstFailure = outcome.firstFailure ?? result.firstFailure
        }
        return outcome
    }

    private static func clientLoops(
        group: MultiThreadedEventLoopGroup, targets: [String], clients: Int, perClient: Int,
        make: @escaping @Sendable (Int, Int) -> Request
    ) async throws -> [LoadClient.Result] {
        try await withThrowingTaskGroup(of: LoadClient.Result.self) { tasks in
            for client in 0..<clients {
                let loop = group.next()
                tasks.addTask {
                    let connections = try await connect(targets, on: loop)
                    return try await loop.flatSubmit {
                        LoadClient(client: client, perClient: perClient, connections: connections, loop: loop, make: make).start()
                    }.get()
                }
            }
            var all: [LoadClient.Result] = []
            for try await result in tasks { all.append(result) }
            return all
        }
    }

    private static func connect(_ targets: [String], on loop: any EventLoop) async throws -> [LoadConnection] {
        var connections: [LoadConnection] = []
        for target in targets {
            guard let colon = target.lastIndex(of: ":"), let port = Int(target[target.index(after: colon)...]) else {
                throw LoadError(description: "bad target \(target)")
            }
            let host = String(target[..<colon])
            let handler = LoadConnection(host: target)
            _ = try await ClientBootstrap(group: loop)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler) }
                }
                .connect(host: host, port: port).get()
            connections.append(handler)
        }
        return connections
    }

    struct LoadError: Error, CustomStringConvertible {
        let description: String
    }
}

/// One client's loop. Confined to its event loop.
private final class LoadClient {
    struct Result: Sendable {
        var latenciesMs: [Double] = []
        var statuses: [Int: Int] = [:]
        var firstFailure: String?
    }

    let client: Int
    let perClient: Int
    let connections: [LoadConnection]
    let loop: any EventLoop
    let make: @Sendable (Int, Int) -> HTTPLoad.Request
    var index = 0
    var result = Result()
    var sentAt = NIODeadline.now()
    let done: EventLoopPromise<Result>

    init(client: Int, perClient: Int, connections: [LoadConnection], loop: any EventLoop, make: @escaping @Sendable (Int, Int) -> HTTPLoad.Request) {
        self.client = client
        self.perClient = perClient
        self.connections = connections
        self.loop = loop
        self.make = make
        self.done = loop.makePromise()
        result.latenciesMs.reserveCapacity(perClient)
    }

    func start() -> EventLoopFuture<Result> {
        next()
        return done.futureResult
    }

    private func next() {
        guard index < perClient else {
            for connection in connections { connection.close() }
            return done.succeed(result)
        }
        let request = make(client, index)
        index += 1
        sentAt = .now()
        connections[request.target].send(request) { [self] answer in
            switch answer {
            case .success(let status):
                result.latenciesMs.append(Double((NIODeadline.now() - sentAt).nanoseconds) / 1e6)
                result.statuses[status, default: 0] += 1
                if !(200..<300).contains(status) && result.firstFailure == nil {
                    result.firstFailure = "\(request.method) \(request.path) answered \(status)"
                }
                next()
            case .failure(let error):
                for connection in connections { connection.close() }
                done.fail(error)
            }
        }
    }
}

/// One kept-alive connection: one request at a time, its answer framed by
/// Content-Length or chunks.
private final class LoadConnection: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let host: String
    private var context: ChannelHandlerContext?
    private var received: ByteBuffer?
    private var waiting: ((Result<Int, any Error>) -> Void)?

    init(host: String) {
        self.host = host
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func send(_ request: HTTPLoad.Request, _ answer: @escaping (Result<Int, any Error>) -> Void) {
        guard let context else { return answer(.failure(HTTPLoad.LoadError(description: "connection to \(host) is closed"))) }
        waiting = answer
        var bytes = context.channel.allocator.buffer(capacity: 160 + request.body.utf8.count)
        bytes.writeString("\(request.method) \(request.path) HTTP/1.1\r\nHost: \(host)\r\n")
        if !request.body.isEmpty {
            bytes.writeString("Content-Type: application/json\r\nContent-Length: \(request.body.utf8.count)\r\n")
        }
        bytes.writeString("\r\n")
        bytes.writeString(request.body)
        context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
    }

    func close() {
        context?.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        if received == nil { received = chunk } else { received!.writeBuffer(&chunk) }
        guard let buffer = received else { return }
        let framed: (status: Int, length: Int)? = buffer.withUnsafeReadableBytes { bytes in
            guard case .complete(let head) = HTTPFraming.response(bytes, toHEAD: false) else { return nil }
            switch head.body {
            case .none: return (head.status, head.headLength)
            case .length(let length): return (head.status, head.headLength + length)
            case .chunked:
                guard case .complete(let length) = HTTPFraming.chunkedBodyLength(UnsafeRawBufferPointer(rebasing: bytes[head.headLength...])) else { return nil }
                return (head.status, head.headLength + length)
            case .untilClose: return nil
            }
        }
        guard let framed, buffer.readableBytes >= framed.length else { return }
        received = nil
        let answer = waiting
        waiting = nil
        answer?(.success(framed.status))
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.context = nil
        let answer = waiting
        waiting = nil
        answer?(.failure(HTTPLoad.LoadError(description: "\(host) closed the connection")))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
