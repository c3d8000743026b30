import Hummingbird

/// What a request for no route gets, in the API's error shape: 405 with an
/// `Allow` header when its path is a route's with another method, else 404.
/// (The router answers both with an empty 404.)
struct RouteNotFoundMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    /// The router's routes, read when a request finds none (all are added
    /// by then).
    let routes: @Sendable () -> [(method: String, path: String)]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let path = request.uri.path
            let methods = Set(routes().filter { Self.matches(pattern: $0.path, path) }.map(\.method)).sorted()
            if methods.contains(request.method.rawValue) { throw error }
            if methods.isEmpty {
                return APIError(.notFound, "not_found", "no route \(path)").response()
            }
            var response = APIError(.methodNotAllowed, "method_not_allowed", "\(path) allows \(methods.joined(separator: ", "))").response()
            response.headers[.allow] = methods.joined(separator: ", ")
            return response
        }
    }

    /// Whether `path` is an instance of a route's `pattern` (`{name}` or
    /// `:name` segments match any one segment).
    static func matches(pattern: String, _ path: String) -> Bool {
        let expected = pattern.split(separator: "/")
        let actual = path.split(separator: "/")
        guard expected.count == actual.count else { return false }
        return zip(expected, actual).allSatisfy { $0.hasPrefix(":") || ($0.hasPrefix("{") && $0.hasSuffix("}")) || $0 == $1 }
    }
}

extension RouteNotFoundMiddleware {
    /// The middleware for `router`: answers from its routes.
    static func on(_ router: Router<BasicRequestContext>) -> RouteNotFoundMiddleware {
        nonisolated(unsafe) let router = router
        return RouteNotFoundMiddleware { router.routes.map { (method: $0.method.rawValue, path: "\($0.path)") } }
    }
}
