import Dispatch
import Hummingbird
import Metrics
import NIOConcurrencyHelpers

/// Per-request metrics under the names Hummingbird's `MetricsMiddleware`
/// uses (`hb_requests`, `http_server_request_duration_seconds`,
/// `hb_request_errors`, `http_server_active_requests`; route, method and
/// status as dimensions), recorded when the handler returns its response.
///
/// Hummingbird's middleware records them after the body is written, by
/// wrapping every body in a closure. That makes every response a streamed
/// one, which its HTTP/1.1 writer sends as the head, then the body, each
/// flushed in a write of its own: two system calls and two TCP segments per
/// answer instead of one. Here the head and a body held in one buffer go
/// out in one write. The duration is the time to the response (for a
/// streamed body, such as the event feed, to its head).
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    private let metrics = Cache()

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        let active = metrics.active(request.method)
        active.increment()
        defer { active.decrement() }
        do {
            let response = try await next(request, context)
            let endpoint = metrics.endpoint(context.endpointPath ?? "Unknown", request.method, response.status)
            endpoint.requests.increment()
            endpoint.duration.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status ?? .internalServerError
            let endpoint = metrics.endpoint(context.endpointPath ?? "NotFound", request.method, status)
            endpoint.requests.increment()
            endpoint.errors.increment()
            throw error
        }
    }

    /// The metric handles, made once per route, method and status.
    final class Cache: Sendable {
        struct Endpoint: Sendable {
            let requests: Counter
            let duration: Metrics.Timer
            let errors: Counter
        }

        private struct Key: Hashable {
            let route: String
            let method: HTTPRequest.Method
            let status: Int
        }

        private let endpoints = NIOLockedValueBox<[Key: Endpoint]>([:])
        private let meters = NIOLockedValueBox<[HTTPRequest.Method: Meter]>([:])

        func active(_ method: HTTPRequest.Method) -> Meter {
            meters.withLockedValue { meters in
                if let meter = meters[method] { return meter }
                let meter = Meter(label: "http.server.active_requests", dimensions: [("http.request.method", method.rawValue)])
                meters[method] = meter
                return meter
            }
        }

        func endpoint(_ route: String, _ method: HTTPRequest.Method, _ status: HTTPResponse.Status) -> Endpoint {
            let key = Key(route: route, method: method, status: status.code)
            return endpoints.withLockedValue { endpoints in
                if let endpoint = endpoints[key] { return endpoint }
                let dimensions = [("http.route", route), ("http.request.method", method.rawValue), ("http.response.status_code", "\(status.code)")]
                let endpoint = Endpoint(
                    requests: Counter(label: "hb.requests", dimensions: dimensions),
                    duration: Metrics.Timer(label: "http.server.request.duration", dimensions: dimensions, preferredDisplayUnit: .seconds),
                    errors: Counter(
                        label: "hb.request.errors",
                        dimensions: [("http.route", route), ("http.request.method", method.rawValue), ("error.type", "\(status.code)")]))
                endpoints[key] = endpoint
                return endpoint
            }
        }
    }
}
