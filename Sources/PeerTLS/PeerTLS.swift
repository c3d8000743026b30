import Foundation
import NIOSSL
import X509

/// TLS 1.3 with mutual authentication for the peer protocol. Both ends
/// present a certificate the cluster's CA signed and accept only such a
/// certificate; which node a certificate belongs to is checked after the
/// protocol's own handshake, against the id the peer claims there
/// (`peerID(of:)`), since a peer is dialled by address, not by name.
public struct PeerTLS: Sendable {
    /// The node this side's certificate names.
    public let nodeID: String
    public let server: NIOSSLContext
    public let client: NIOSSLContext

    /// This node's TLS from a certificates folder (`ClusterCertificates`).
    /// Fails with a clear message when a file is missing or unreadable, when
    /// the certificate names another node, or when it is not (or no longer)
    /// valid: a node does not start with a certificate its peers refuse.
    public static func load(folder: String, nodeID: String, now: Date = Date()) throws -> PeerTLS {
        let files = ClusterCertificates(folder: folder)
        let fileManager = FileManager.default
        for (path, what) in [(files.caCertificate, "the cluster CA's certificate"), (files.certificate(nodeID), "\(nodeID)'s certificate"), (files.key(nodeID), "\(nodeID)'s key")]
        where !fileManager.fileExists(atPath: path) {
            throw CertificateError(
                "\(what) \(path) does not exist: create it with `orderly certs init --data DATA --nodes \(nodeID)` (the folder is DATA/certs), or pass --insecure to run in clear text")
        }
        let certificate = try ClusterCertificates.readCertificate(files.certificate(nodeID))
        guard let named = ClusterCertificates.nodeID(of: certificate), named == nodeID else {
            throw CertificateError("\(files.certificate(nodeID)) names \(ClusterCertificates.nodeID(of: certificate) ?? "no node"), not \(nodeID)")
        }
        guard certificate.notValidBefore <= now, now < certificate.notValidAfter else {
            throw CertificateError("\(files.certificate(nodeID)) is valid from \(certificate.notValidBefore) to \(certificate.notValidAfter), not now")
        }
        do {
            return try PeerTLS(
                nodeID: nodeID,
                authority: try NIOSSLCertificate.fromPEMFile(files.caCertificate),
                chain: try NIOSSLCertificate.fromPEMFile(files.certificate(nodeID)),
                key: try NIOSSLPrivateKey(file: files.key(nodeID), format: .pem))
        } catch let error as CertificateError {
            throw error
        } catch {
            throw CertificateError("cannot load the TLS files of \(nodeID) from \(folder): \(error)")
        }
    }

    public init(nodeID: String, authority: [NIOSSLCertificate], chain: [NIOSSLCertificate], key: NIOSSLPrivateKey) throws {
        self.nodeID = nodeID
        var server = TLSConfiguration.makeServerConfigurationWithMTLS(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key), trustRoots: .certificates(authority))
        server.minimumTLSVersion = .tlsv13
        var client = TLSConfiguration.makeClientConfiguration()
        client.minimumTLSVersion = .tlsv13
        client.trustRoots = .certificates(authority)
        // Peers are dialled by address; the certificate's node id is checked
        // against the id the peer claims (`peerID(of:)`).
        client.certificateVerification = .noHostnameVerification
        client.certificateChain = chain.map { .certificate($0) }
        client.privateKey = .privateKey(key)
        self.server = try NIOSSLContext(configuration: server)
        self.client = try NIOSSLContext(configuration: client)
    }

    /// The node id the peer's (verified) certificate names.
    public static func peerID(of certificate: NIOSSLCertificate) -> String? {
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der) else { return nil }
        return ClusterCertificates.nodeID(of: parsed)
    }
}

/// HTTPS for a role's HTTP server (`--tls-cert`, `--tls-key`), and the
/// trust a client of such a server needs (`--tls-ca`).
public enum HTTPSConfiguration {
    /// A server configuration from PEM files: the certificate (and any
    /// intermediates after it) and its key. TLS 1.2 or later.
    public static func server(certificate: String, key: String) throws -> TLSConfiguration {
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(certificate)
            guard !chain.isEmpty else { throw CertificateError("\(certificate) holds no certificate") }
            var configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
            configuration.minimumTLSVersion = .tlsv12
            return configuration
        } catch let error as CertificateError {
            throw error
        } catch {
            throw CertificateError("cannot load the HTTPS certificate \(certificate) and key \(key): \(error)")
        }
    }

    /// A client configuration that trusts the CA in `authority` (PEM) and
    /// checks the server's name.
    public static func client(trusting authority: String) throws -> TLSConfiguration {
        do {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(authority))
            return configuration
        } catch {
            throw CertificateError("cannot load the CA certificate \(authority): \(error)")
        }
    }
}
