import AsyncHTTPClient
import Foundation
import PeerTLS
import SwiftASN1
import Testing
import X509

/// Certificates from `orderly certs init`, peer links over TLS between real
/// processes, and HTTPS end to end: client to balancer, balancer to API
/// nodes, warehouse to API nodes.
@Suite(.serialized) struct TLSTests {
    @Test func certsInitMakesACAAndOneCertificatePerNodeAndKeepsWhatExists() async throws {
        let folder = try TemporaryFolder()
        let first = try await OrderlyBinary.run(["certs", "init", "--data", folder.path, "--nodes", "api-1,stats", "--hosts", "shop.example,10.0.0.7"])
        #expect(first.status == 0, "\(first.stderr)")
        let certs = ClusterCertificates(folder: folder.file("certs"))
        let ca = try ClusterCertificates.readCertificate(certs.caCertificate)
        for id in ["api-1", "stats"] {
            let certificate = try ClusterCertificates.readCertificate(certs.certificate(id))
            #expect(ClusterCertificates.nodeID(of: certificate) == id)
            #expect(certificate.issuer == ca.subject)
            #expect(ca.publicKey.isValidSignature(certificate.signature, for: certificate), "\(id)'s certificate is signed by the CA")
            let names = try certificate.extensions.subjectAlternativeNames.map { Array($0) } ?? []
            #expect(names.contains(.dnsName("shop.example")) && names.contains(.dnsName("localhost")))
            #expect(names.contains(.ipAddress(ASN1OctetString(contentBytes: [10, 0, 0, 7]))))
            let permissions = try FileManager.default.attributesOfItem(atPath: certs.key(id))[.posixPermissions] as? Int
            #expect(permissions == 0o600, "a key is readable by its owner only")
        }
        // Again with one more node: the CA and the existing certificates stay.
        let before = try Data(contentsOf: URL(fileURLWithPath: certs.certificate("api-1")))
        let second = try await OrderlyBinary.run(["certs", "init", "--data", folder.path, "--nodes", "api-1,stats,api-2"])
        #expect(second.status == 0)
        #expect(second.stdout.contains("api-2.pem") && !second.stdout.contains("api-1.pem") && !second.stdout.contains("ca.pem"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: certs.certificate("api-1"))) == before)
        #expect(try ClusterCertificates.readCertificate(certs.certificate("api-2")).issuer == ca.subject)

        let bad = try await OrderlyBinary.run(["certs", "init", "--data", folder.path, "--nodes", "api 1"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("api 1"), "the bad id is named: \(bad.stderr)")
    }

    @Test func aNodeWithACertificateFromAnotherCAIsKeptOut() async throws {
        let cluster = try TestCluster()
        defer { cluster.stopAll(signal: SIGKILL) }
        try await cluster.start("api-1")
        try await cluster.start("api-2")
        try await cluster.waitForView(["api-1": "alive", "api-2": "alive"], on: cluster.ids)

        // Same secret, a certificate from a CA of its own: the peers it
        // dials refuse it, and it is never seen alive.
        let stranger = try TemporaryFolder()
        let certs = try testCertificates(in: stranger.path, for: ["api-3"])
        var environment = cluster.environment
        environment["ORDERLY_CERTS"] = certs
        let outsider = try OrderlyProcess(
            ["node", "--id", "api-3", "--data", stranger.path, "--http", "127.0.0.1:0", "--peer", "127.0.0.1:0", "--seeds", cluster.peer("api-1")],
            stderrPath: stranger.file("api-3.log"), environment: environment)
        defer { outsider.stop(signal: SIGKILL) }
        _ = try await outsider.readyRecord()
        // Each side says why: the stranger refuses the cluster's
        // certificate, and api-1 hears that its own was refused.
        do {
            try await waitFor("both sides to log why the connection was refused", timeout: .seconds(30)) {
                let own = try String(contentsOfFile: cluster.folder.file("api-1-1.log"), encoding: .utf8)
                let theirs = outsider.stderrTail()
                return own.contains("closing peer connection") && own.contains("the peer refused this node's certificate")
                    && theirs.contains("closing peer connection") && theirs.contains("certificate was refused")
            }
        } catch {
            let own = (try? String(contentsOfFile: cluster.folder.file("api-1-1.log"), encoding: .utf8)) ?? ""
            Issue.record("api-1: \(own.split(separator: "\n").filter { $0.contains("closing") }.prefix(3))\nstranger: \(outsider.stderrTail().split(separator: "\n").filter { $0.contains("closing") }.prefix(3))")
            throw error
        }
        let members = try await cluster.statuses(via: "api-1")
        #expect(members["api-3"] == nil || members["api-3"] != "alive", "the stranger is not a member: \(members)")
        #expect(members["api-2"] == "alive", "the cluster goes on")
    }

    @Test func ordersGoOverHTTPSThroughTheBalancerAndShipOverHTTPS() async throws {
        let cluster = try TestCluster()
        defer { cluster.stopAll(signal: SIGKILL) }
        let certs = cluster.folder.file("certs")
        func https(_ id: String) -> [String] { ["--tls-cert", "\(certs)/\(id).pem", "--tls-key", "\(certs)/\(id).key"] }
        for id in ["api-1", "api-2"] { try await cluster.start(id, extra: https(id)) }
        try await cluster.waitForView(["api-1": "alive", "api-2": "alive"], on: cluster.ids, scheme: "https")

        let client = cluster.httpsClient
        // Plain HTTP to an HTTPS port gets no answer.
        await #expect(throws: (any Error).self) { try await HTTP.send(.GET, "http://\(cluster.http("api-1"))/health/live", timeout: .seconds(3)) }
        #expect(try await HTTP.send(.GET, "https://\(cluster.http("api-1"))/health/live", client: client).status == 200)

        let balancer = try await cluster.startRole(
            ["balancer", "--http", "127.0.0.1:0", "--strategy", "ring", "--tls-ca", "\(certs)/ca.pem"] + https("balancer"), log: "balancer.log")
        defer { balancer.process.stop(signal: SIGKILL) }
        let wms = try await cluster.startRole(
            ["wms", "--data", cluster.folder.path, "--http", "127.0.0.1:0", "--handling-time", "100ms", "--tls-ca", "\(certs)/ca.pem"] + https("wms"),
            log: "wms.log")
        defer { wms.process.stop(signal: SIGKILL) }
        try await waitFor("the balancer to see both nodes healthy") {
            let backends = try await HTTP.send(.GET, "https://\(balancer.http)/balancer", client: client).body["backends"] as? [[String: Any]] ?? []
            return backends.filter { $0["state"] as? String == "healthy" }.count == 2
        }

        for index in 0..<6 {
            let placed = try await HTTP.send(
                .POST, "https://\(balancer.http)/orders", #"{"id":"tls-\#(index)","customer":"c","lines":[{"sku":"SKU-00001","qty":1}]}"#,
                client: client)
            #expect(placed.status == 201, "\(placed.body)")
            let total = try #require(placed.body["total_cents"] as? Int)
            let paid = try await HTTP.send(
                .POST, "https://\(balancer.http)/orders/tls-\(index)/payments", #"{"id":"p","amount_cents":\#(total)}"#, client: client)
            #expect(paid.status == 201, "\(paid.body)")
        }
        for index in 0..<6 {
            try await waitFor("tls-\(index) to ship over HTTPS", timeout: .seconds(30)) {
                try await HTTP.send(.GET, "https://\(balancer.http)/orders/tls-\(index)", client: client).body["status"] as? String == "shipped"
            }
        }
    }
}
