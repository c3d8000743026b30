import Foundation
import Hummingbird
import LogStorage
import Node
import OrderDomain
import Replication
import ServiceLifecycle

/// `GET /events`: every event of every order the cluster holds, as
/// Server-Sent Events (see `FeedSource` and `FeedOrdering`).
struct EventRoutes {
    let feeds: FeedSource
    /// How long an idle feed waits before it sends a keep-alive comment.
    let keepAlive: Duration
    /// Why this node cannot serve a feed now (nil: it can).
    let notReady: @Sendable () -> String?

    func register(on router: Router<some RequestContext>) {
        router.get("events") { request, _ in
            if let reason = notReady() {
                return APIError(.serviceUnavailable, "unavailable", "this node cannot serve the event feed now (\(reason)); ask another").response()
            }
            let query = request.uri.queryParameters
            let token = request.headers[values: HTTPFields.Element.Name("Last-Event-ID")!].last ?? query.get("after").map { String($0) } ?? ""
            let position: FeedPosition
            do { position = try FeedPosition(token: token.trimmingCharacters(in: .whitespaces)) } catch {
                return APIError.badRequest("invalid_position", "\(error)").response()
            }
            var order: String?
            if let raw = query.get("order") {
                guard let id = ClientID(String(raw)) else {
                    return APIError.badRequest("invalid_id", "order must be 1-64 characters of A-Z a-z 0-9 . _ -").response()
                }
                order = id.rawValue
            }
            var types: Set<String>?
            if let raw = query.get("types") {
                let names = Set(raw.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) })
                let unknown = names.subtracting(OrderEvent.typeNames).sorted()
                guard unknown.isEmpty else {
                    return APIError.badRequest(
                        "invalid_types", "unknown event type(s) \(unknown.joined(separator: ", ")); known: \(OrderEvent.typeNames.joined(separator: ", "))"
                    ).response()
                }
                types = names
            }
            let (onlyOrder, onlyTypes) = (order, types)
            let keepAlive = self.keepAlive
            let feeds = self.feeds
            let body = ResponseBody { writer in
                // Opened here: a response whose body never runs (the client
                // went first) opens nothing.
                let feed = feeds.open(from: position) { event in
                    (onlyOrder == nil || event.orderID == onlyOrder) && (onlyTypes?.contains(event.type) ?? true)
                }
                do {
                    try await writer.write(ByteBuffer(string: ": orderly event feed\nretry: 1000\n\n"))
                    // The feed never ends by itself: a node that stops
                    // gracefully ends it (the client resumes elsewhere),
                    // or the server would wait for it for ever.
                    try await withGracefulShutdownHandler {
                        while let items = await feed.next(max: 200, wait: keepAlive) {
                            var buffer = ByteBuffer()
                            if items.isEmpty { buffer.writeString(": keep-alive\n\n") }
                            for item in items { Self.write(item, into: &buffer) }
                            try await writer.write(buffer)
                        }
                    } onGracefulShutdown: {
                        Task { await feed.close() }
                    }
                } catch {
                    await feed.close()
                    throw error
                }
                await feed.close()
                try await writer.finish(nil)
            }
            return Response(
                status: .ok,
                headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", HTTPFields.Element.Name("X-Accel-Buffering")!: "no"],
                body: body)
        }
    }

    /// One event: `id:` the position after it, `event:` its type, `data:`
    /// one line of JSON.
    static func write(_ item: FeedItem, into buffer: inout ByteBuffer) {
        let event = item.event
        // Today's shape of its type (an older schema version upcast); a
        // payload this release cannot read goes out as the log holds it.
        let current = (try? OrderEvent.currentPayload(typeName: event.type, payload: event.payload)) ?? event.payload
        // A JSON text's line breaks are whitespace between tokens (inside
        // strings they are escaped): one data line.
        let payload = current.utf8.contains(where: { $0 == 10 || $0 == 13 })
            ? String(decoding: current.utf8.map { $0 == 10 || $0 == 13 ? 32 : $0 }, as: UTF8.self)
            : current
        buffer.writeString("id: \(item.position.token)\nevent: \(event.type)\ndata: {\"order_id\":")
        buffer.writeString(JSONValue.string(event.orderID).serialized())
        buffer.writeString(",\"version\":\(event.version),\"type\":")
        buffer.writeString(JSONValue.string(event.type).serialized())
        buffer.writeString(",\"payload\":\(payload),\"origin\":")
        buffer.writeString(JSONValue.string(event.origin).serialized())
        buffer.writeString(",\"offset\":\(event.offset),\"event_id\":")
        buffer.writeString(JSONValue.string(event.eventID).serialized())
        buffer.writeString(",\"term\":\(event.term),\"recorded_at\":\(event.recordedAt)}\n\n")
    }
}
