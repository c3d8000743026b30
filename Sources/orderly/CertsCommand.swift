import ArgumentParser
import Foundation
import PeerTLS

struct CertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs",
        abstract: "The cluster's TLS certificates.",
        subcommands: [CertsInit.self])
}

struct CertsInit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create the cluster's CA and a certificate for each node, where missing.",
        discussion: """
            Writes DATA/certs/ca.pem and ca.key (the CA; keep ca.key off the nodes
            once every certificate is issued), and for each node ID.pem and ID.key
            (ECDSA P-256, TLS for both ends of a connection). A certificate names its
            node id as its subject's common name, and localhost, 127.0.0.1 and each
            --hosts entry as subject alternative names, so it can also serve HTTPS
            (--tls-cert, --tls-key). Run it again with more --nodes to add nodes: what
            exists is kept. Copy ca.pem and a node's two files to the host that runs
            it, and start the node with --certs FOLDER (or ORDERLY_CERTS).
            """)

    @Option(help: "Data folder; the certificates go to DATA/certs (or --out).")
    var data: String?

    @Option(help: "Folder for the certificates (default DATA/certs).")
    var out: String?

    @Option(help: "Node ids, comma-separated: every API node and every stats, wms and balancer process.")
    var nodes: String = "api-1,api-2,api-3,stats,wms,balancer"

    @Option(help: "Extra DNS names or IP addresses for every new certificate, comma-separated (hosts the nodes serve HTTPS on).")
    var hosts: String = ""

    @Option(help: "Days the new certificates are valid.")
    var days: Int = 825

    func validate() throws {
        guard (data == nil) != (out == nil) else { throw ValidationError("give --data or --out (one of them)") }
        for id in ids { try validateNodeID(id) }
        guard !ids.isEmpty else { throw ValidationError("--nodes names no node") }
        guard (1...3650).contains(days) else { throw ValidationError("--days must be 1-3650") }
    }

    var ids: [String] { nodes.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }

    var folder: String { out ?? ((data ?? ".") as NSString).appendingPathComponent("certs") }

    func run() async throws {
        let extra = hosts.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let written: [String]
        do {
            written = try ClusterCertificates(folder: folder).initialize(nodes: ids, hosts: extra, validity: TimeInterval(days) * 86_400)
        } catch {
            throw ValidationError("\(error)")
        }
        if written.isEmpty {
            print("\(folder): every certificate exists (ca.pem and \(ids.joined(separator: ", ")))")
        } else {
            for file in written { print("wrote \(file)") }
        }
    }
}
