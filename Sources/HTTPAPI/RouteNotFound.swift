import Hummingbird

/// What a request for no route gets, in the API's error shape: 405 with an
/// `Allow` header when its path is a route's with another method, else 404.
/// (The router answers both with an empty 404.)
struct RouteNotFoundMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    /// The router's routes (this middleware is added after the last).
    let routes: [(method: String, path: String)]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let path = request.uri.path
            let methods = Set(routes.filter { Self.matches(pattern: $0.path, path) }.map(\.method)).sorted()
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
    /// The middleware for `router`, once it has all its routes: it keeps a
    /// copy of them, not the router (which holds its middleware: the two
    /// would keep each other, and the services the routes use, for as long
    /// as the process ran).
    static func on(_ router: Router<BasicRequestContext>) -> RouteNotFoundMiddleware {
        RouteNotFoundMiddleware(routes: router.routes.map { (method: $0.method.rawValue, path: "\($0.path)") })
    }
}
