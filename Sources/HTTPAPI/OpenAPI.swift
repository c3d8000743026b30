import Hummingbird

/// The HTTP contract of every role (`docs/openapi.yaml`, embedded by
/// `tools/embed-openapi`), served at `GET /openapi.yaml`.
public enum OpenAPI {
    /// `GET /openapi.yaml` on `router`.
    public static func addRoute(to router: Router<BasicRequestContext>) {
        let body = ByteBuffer(string: yaml)
        router.get("openapi.yaml") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml"], body: ResponseBody(byteBuffer: body))
        }
    }
}
