import Foundation
import NIOCore
import NIOPosix
import Testing

/// The peer port of a real `orderly node`.
@Suite(.serialized) struct PeerProtocolTests {
    @Test func aNodeRefusesToJoinAClusterWithoutASecret() async throws {
        let folder = try TemporaryFolder()
        let node = try OrderlyProcess(
            ["node", "--id", "api-1", "--data", folder.path, "--http", "127.0.0.1:0", "--peer", "127.0.0.1:0"],
            stderrPath: folder.file("node.log"), environment: ["ORDERLY_CLUSTER_SECRET": nil])
        try await waitFor("the node to refuse to start", timeout: .seconds(60)) { !node.process.isRunning }
        #expect(node.process.terminationStatus != 0)
        #expect(node.stderrTail().contains("refusing to join a cluster without a shared secret"))
        #expect(!FileManager.default.fileExists(atPath: folder.file("api-1/log.sqlite")), "nothing was started")
    }

    @Test func aNodeRefusesToJoinAClusterWithoutItsCertificate() async throws {
        let folder = try TemporaryFolder()
        try testCertificates(in: folder.path, for: ["api-2"])
        let node = try OrderlyProcess(
            ["node", "--id", "api-1", "--data", folder.path, "--http", "127.0.0.1:0", "--peer", "127.0.0.1:0"],
            stderrPath: folder.file("node.log"), environment: ["ORDERLY_CLUSTER_SECRET": "a-test-secret-of-32-bytes-length", "ORDERLY_CERTS": nil])
        try await waitFor("the node to refuse to start", timeout: .seconds(60)) { !node.process.isRunning }
        #expect(node.process.terminationStatus != 0)
        #expect(node.stderrTail().contains("api-1's certificate"))
        #expect(node.stderrTail().contains("orderly certs init"))
        #expect(!FileManager.default.fileExists(atPath: folder.file("api-1/log.sqlite")), "nothing was started")
    }

    @Test func hostileBytesOnThePeerPortCloseOnlyThatConnection() async throws {
        let folder = try TemporaryFolder()
        try testCertificates(in: folder.path, for: ["api-1"])
        let node = try OrderlyProcess(
            ["node", "--id", "api-1", "--data", folder.path, "--http", "127.0.0.1:0", "--peer", "127.0.0.1:0"],
            stderrPath: folder.file("node.log"), environment: ["ORDERLY_CLUSTER_SECRET": "a-test-secret-of-32-bytes-length"])
        defer { node.stop() }
        let ready = try await node.readyRecord()
        let http = try #require(ready["http"] as? String)
        let peer = try #require(ready["peer"] as? String, "the ready record names the peer address")
        let port = try #require(Int(peer.split(separator: ":").last ?? ""))

        for garbage in ["GET / HTTP/1.1\r\n\r\n", "\u{0}\u{0}\u{0}\u{10}XXXXXXXXXXXXXXXX"] {
            let raw = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
            try await raw.writeAndFlush(ByteBuffer(string: garbage))
            try await raw.closeFuture.get()
        }
        _ = try await waitUntil("the refusals to be logged") {
            node.stderrTail().components(separatedBy: "closing peer connection").count >= 3 ? true : nil
        }
        let health = try await HTTP.send(.GET, "http://\(http)/health/live")
        #expect(health.status == 200, "the node is still up")
    }
}
