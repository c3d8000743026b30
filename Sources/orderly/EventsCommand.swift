import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// `orderly events`: the cluster's event feed (`GET /events`) as JSON
/// lines, for scripts. Reconnects by itself, to the next target, from
/// where it stood.
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Print the cluster's event feed as JSON lines.",
        discussion: """
            Reads GET /events of an API node (or of the balancer, which sends
            the client on to one) and prints one JSON object per event: the
            feed's fields (order_id, version, type, payload, origin, offset,
            event_id, term, recorded_at) and "position", the token to resume
            after it. When the connection drops (the node died, the network
            went), it connects to the next --target from the last position:
            no event is printed twice or skipped.

            orderly events --target http://127.0.0.1:8080 --types OrderPaid,OrderShipped
            """)

    @Option(name: .long, help: "An API node or balancer, http://HOST:PORT; repeat it to name fallbacks, tried in turn.")
    var target: [String] = []

    @Option(name: .long, help: "Resume after this position token (a line's \"position\"); default: from the beginning.")
    var after: String?

    @Option(name: .long, help: "Only this order's events.")
    var order: String?

    @Option(name: .long, help: "Only these event types, comma-separated (e.g. OrderPaid,OrderShipped).")
    var types: String?

    @Option(name: .long, help: "Stop after this many events (default: follow for ever).")
    var count: Int?

    func validate() throws {
        guard !target.isEmpty else { throw ValidationError("give at least one --target http://HOST:PORT") }
        for url in target {
            guard let parsed = URL(string: url), parsed.scheme == "http", parsed.host != nil else {
                throw ValidationError("--target \(url) is not an http://HOST:PORT address")
            }
        }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func run() async throws {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        // The feed sends a keep-alive every 10 s: 30 s of silence is a dead
        // connection.
        configuration.timeout = .init(connect: .seconds(2), read: .seconds(30))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            try await follow(client)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try? await client.shutdown()
    }

    private func follow(_ client: HTTPClient) async throws {
        var position = after ?? ""
        var printed = 0
        var attempt = 0
        var pause = Duration.milliseconds(100)
        while count.map({ printed < $0 }) ?? true {
            var url = target[attempt % target.count].trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/events" + query
            attempt += 1
            do {
                for _ in 0..<3 {
                    var request = HTTPClientRequest(url: url)
                    request.headers.add(name: "Accept", value: "text/event-stream")
                    if !position.isEmpty { request.headers.add(name: "Last-Event-ID", value: position) }
                    let response = try await client.execute(request, deadline: .now() + .hours(24 * 365))
                    if response.status == .temporaryRedirect || response.status == .permanentRedirect,
                        let location = response.headers.first(name: "Location")
                    {
                        url = location
                        continue
                    }
                    guard response.status == .ok else {
                        let body = try await response.body.collect(upTo: 64 * 1024)
                        let text = String(buffer: body)
                        // A refusal of what was asked is final; a node that is not ready is not.
                        if response.status == .badRequest { throw Refused(description: "\(url) refused the request: \(text)") }
                        throw EventsError("\(url) answered \(response.status.code): \(text)")
                    }
                    var parser = ServerSentEvents()
                    for try await chunk in response.body {
                        for event in parser.feed(chunk) {
                            guard let id = event.id, let data = event.data, data.hasPrefix("{") else { continue }
                            position = id
                            FileHandle.standardOutput.write(Data((#"{"position":"\#(id)","# + data.dropFirst() + "\n").utf8))
                            printed += 1
                            pause = .milliseconds(100)
                            if let count, printed >= count { return }
                        }
                    }
                    throw EventsError("\(url) ended the feed")
                }
            } catch let refused as Refused {
                FileHandle.standardError.write(Data("orderly events: \(refused)\n".utf8))
                throw ExitCode(2)
            } catch {
                FileHandle.standardError.write(Data("orderly events: \(error); reconnecting from the last position\n".utf8))
                try await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(2))
            }
        }
    }

    private var query: String {
        var items: [URLQueryItem] = []
        if let order { items.append(URLQueryItem(name: "order", value: order)) }
        if let types { items.append(URLQueryItem(name: "types", value: types)) }
        guard !items.isEmpty else { return "" }
        var components = URLComponents()
        components.queryItems = items
        return components.percentEncodedQuery.map { "?" + $0 } ?? ""
    }
}

struct Refused: Error, CustomStringConvertible {
    let description: String
}

struct EventsError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A Server-Sent Events parser: bytes in, whole events out.
struct ServerSentEvents {
    struct Event: Equatable {
        var id: String?
        var type: String?
        var data: String?
    }

    private var pending: [UInt8] = []
    private var current = Event()

    mutating func feed(_ buffer: ByteBuffer) -> [Event] {
        pending += buffer.readableBytesView
        var events: [Event] = []
        var start = 0
        while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
            var line = pending[start..<newline]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            start = newline + 1
            if line.isEmpty {
                if current.data != nil { events.append(current) }
                current.data = nil
                current.type = nil
                continue
            }
            let text = String(decoding: line, as: UTF8.self)
            if text.hasPrefix(":") { continue }
            let (field, value) = text.firstIndex(of: ":").map { index -> (String, String) in
                var value = text[text.index(after: index)...]
                if value.hasPrefix(" ") { value = value.dropFirst() }
                return (String(text[..<index]), String(value))
            } ?? (text, "")
            switch field {
            case "id": current.id = value
            case "event": current.type = value
            case "data": current.data = current.data.map { $0 + "\n" + value } ?? value
            default: break
            }
        }
        pending.removeFirst(start)
        return events
    }
}
