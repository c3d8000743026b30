import Crypto
import Foundation
import SwiftASN1
import X509

/// A cluster's certificates in one folder, as `orderly certs init` writes
/// them: the cluster's CA (`ca.pem`, and its key `ca.key`, needed only to
/// issue more), and for each node `ID.pem` and `ID.key`. A node's
/// certificate names its node id as the subject's common name; peers accept
/// it only from a peer that claims that id.
public struct ClusterCertificates: Sendable {
    public let folder: String

    public init(folder: String) {
        self.folder = (folder as NSString).standardizingPath
    }

    public var caCertificate: String { path("ca.pem") }
    public var caKey: String { path("ca.key") }
    public func certificate(_ id: String) -> String { path("\(id).pem") }
    public func key(_ id: String) -> String { path("\(id).key") }

    private func path(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }

    /// How long what `initialize` issues is valid.
    public static let defaultValidity: TimeInterval = 825 * 86_400

    /// Creates the CA when the folder has none, then a certificate for each
    /// id that has none (an existing one is kept). `hosts` (DNS names or IP
    /// addresses) go into each new certificate's subject alternative names
    /// beside the id, localhost and 127.0.0.1, so the same certificate can
    /// serve HTTPS. Returns the files written.
    @discardableResult
    public func initialize(
        nodes: [String], hosts: [String] = [], validity: TimeInterval = Self.defaultValidity, now: Date = Date()
    ) throws -> [String] {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var written: [String] = []
        let fileManager = FileManager.default
        let ca: (certificate: Certificate, key: Certificate.PrivateKey)
        if fileManager.fileExists(atPath: caCertificate) {
            guard fileManager.fileExists(atPath: caKey) else {
                throw CertificateError("\(caCertificate) exists but its key \(caKey) does not: new certificates cannot be signed here")
            }
            ca = (try Self.readCertificate(caCertificate), try Self.readKey(caKey))
        } else {
            let name = "orderly cluster CA \(UUID().uuidString.prefix(8).lowercased())"
            ca = try Self.makeAuthority(name: name, notBefore: now - 3600, notAfter: now + validity)
            try Self.write(try ca.key.serializeAsPEM().pemString, to: caKey, secret: true)
            try Self.write(try ca.certificate.serializeAsPEM().pemString, to: caCertificate, secret: false)
            written += [caCertificate, caKey]
        }
        for id in nodes where !fileManager.fileExists(atPath: certificate(id)) {
            let issued = try Self.issue(id: id, hosts: hosts, authority: ca, notBefore: now - 3600, notAfter: now + validity)
            try Self.write(try issued.key.serializeAsPEM().pemString, to: key(id), secret: true)
            try Self.write(try issued.certificate.serializeAsPEM().pemString, to: certificate(id), secret: false)
            written += [certificate(id), key(id)]
        }
        return written
    }

    /// A self-signed CA certificate and its key (P-256).
    public static func makeAuthority(name: String, notBefore: Date, notAfter: Date) throws -> (certificate: Certificate, key: Certificate.PrivateKey) {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let subject = try DistinguishedName { OrganizationName("orderly"); CommonName(name) }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
            notValidBefore: notBefore, notValidAfter: notAfter, issuer: subject, subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: key.publicKey)
            },
            issuerPrivateKey: key)
        return (certificate, key)
    }

    /// A node's certificate, signed by `authority`: the id as common name,
    /// and as a DNS name with localhost, 127.0.0.1 and `hosts`; good for
    /// both ends of a TLS connection.
    public static func issue(
        id: String, hosts: [String] = [], authority: (certificate: Certificate, key: Certificate.PrivateKey), notBefore: Date, notAfter: Date
    ) throws -> (certificate: Certificate, key: Certificate.PrivateKey) {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        var names: [GeneralName] = []
        for host in [id, "localhost", "127.0.0.1"] + hosts {
            let name = generalName(host)
            if !names.contains(name) { names.append(name) }
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
            notValidBefore: notBefore, notValidAfter: notAfter, issuer: authority.certificate.subject,
            subject: try DistinguishedName { OrganizationName("orderly"); CommonName(id) },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectAlternativeNames(names)
                SubjectKeyIdentifier(hash: key.publicKey)
                AuthorityKeyIdentifier(keyIdentifier: try authority.certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
            },
            issuerPrivateKey: authority.key)
        return (certificate, key)
    }

    /// An IP address's bytes as such, else a DNS name.
    static func generalName(_ host: String) -> GeneralName {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            return .ipAddress(ASN1OctetString(contentBytes: withUnsafeBytes(of: &v4) { ArraySlice($0) }))
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            return .ipAddress(ASN1OctetString(contentBytes: withUnsafeBytes(of: &v6) { ArraySlice($0) }))
        }
        return .dnsName(host)
    }

    /// The node id a certificate names: its subject's common name.
    public static func nodeID(of certificate: Certificate) -> String? {
        for rdn in certificate.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                return String(attribute.value)
            }
        }
        return nil
    }

    public static func readCertificate(_ path: String) throws -> Certificate {
        try Certificate(pemEncoded: try read(path, what: "certificate"))
    }

    public static func readKey(_ path: String) throws -> Certificate.PrivateKey {
        try Certificate.PrivateKey(pemEncoded: try read(path, what: "private key"))
    }

    static func read(_ path: String, what: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CertificateError("cannot read the \(what) \(path)")
        }
        return String(decoding: data, as: UTF8.self)
    }

    public static func write(_ text: String, to path: String, secret: Bool) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: secret ? 0o600 : 0o644]) else {
            throw CertificateError("cannot write \(path)")
        }
    }
}

public struct CertificateError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
