import ArgumentParser
import NIOSSL
import PeerTLS

/// HTTPS for a role's HTTP server.
struct HTTPSOptions: ParsableArguments {
    @Option(help: "PEM certificate (then any intermediates) to serve HTTPS with instead of HTTP; needs --tls-key. `orderly certs init` makes one per node.")
    var tlsCert: String?

    @Option(help: "PEM private key of --tls-cert.")
    var tlsKey: String?

    func validate() throws {
        guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together: give both or neither") }
    }

    /// The server's TLS, or nil to serve plain HTTP.
    func server() throws -> TLSConfiguration? {
        guard let tlsCert, let tlsKey else { return nil }
        do {
            return try HTTPSConfiguration.server(certificate: tlsCert, key: tlsKey)
        } catch {
            throw ValidationError("\(error)")
        }
    }
}

/// How a role reaches the API nodes' HTTP: HTTPS when they serve it.
struct HTTPSClientOptions: ParsableArguments {
    @Option(help: "CA certificate (PEM) that signed the API nodes' HTTPS certificates: with it, this process reaches them (and the stats node) over HTTPS and checks their certificates.")
    var tlsCa: String?

    /// The client's TLS, or nil for plain HTTP.
    func client() throws -> TLSConfiguration? {
        guard let tlsCa else { return nil }
        do {
            return try HTTPSConfiguration.client(trusting: tlsCa)
        } catch {
            throw ValidationError("\(error)")
        }
    }
}
