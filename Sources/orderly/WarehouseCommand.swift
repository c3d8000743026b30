import ArgumentParser
import Foundation
import HTTPAPI
import Hummingbird
import Logging
import Node
import OrderDomain
import ServiceLifecycle
import Warehouse
import Wire

struct WarehouseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wms",
        abstract: "Run the warehouse: ship each paid order once, through the API.",
        discussion: """
            Follows every origin's log for paid, cancelled and shipped orders and keeps
            its own SQLite in DATA/wms/wms.sqlite (orders followed, stock per SKU from
            the catalog). Once an order's handling time is over it takes the stock and
            records the shipment with POST /orders/{id}/shipments and the shipment id
            wms-<order id>, retried until the API answers: after a crash the same
            shipment is sent again and recorded once. An order without enough stock is
            backordered (GET /wms/orders/{id} says what is missing); a cancelled order
            is never shipped. Once it serves, one line of JSON goes to stdout:
            {"ready":true,"role":"wms",...}.
            """)

    @Option(help: "Node id (1-64 of A-Z a-z 0-9 . _ -).")
    var id: String = "wms"

    @Option(help: "Data folder; the warehouse's file goes to DATA/wms/wms.sqlite.")
    var data: String

    @Option(help: "HTTP address host:port; port 0 picks a free port.")
    var http: HostPort = HostPort(argument: "127.0.0.1:8091")!

    @Option(help: "Peer addresses host:port,... of API nodes (any member will do).")
    var seeds: String

    @Option(help: "Time from payment to shipment (e.g. 2s, 500ms, 0s).")
    var handlingTime: DurationArgument = DurationArgument(argument: "1s")!

    @OptionGroup(title: "Cluster")
    var access: ClusterAccessOptions

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        try validateNodeID(id)
        guard !(try parseSeeds(seeds)).isEmpty else { throw ValidationError("--seeds needs at least one API node's peer address") }
    }

    func run() async throws {
        let seedAddresses = try parseSeeds(seeds)
        let secret = try access.secret()
        Bootstrap.logging(level: logLevel)
        let registry = Bootstrap.metrics()
        var logger = Logger(label: "orderly.wms")
        logger[metadataKey: "node"] = "\(id)"

        let store = try WarehouseStore(path: (data as NSString).appendingPathComponent("wms/wms.sqlite"), catalog: .standard)
        let clients = PeerClients(security: HandshakeConfig(cluster: access.cluster, nodeID: id, secret: secret), logger: logger)
        let tail = LogTail(sink: store, clients: clients, config: .init(seeds: seedAddresses), id: id, logger: logger)
        let shipper = Shipper(store: store, tail: tail, handlingMs: handlingTime.milliseconds, logger: logger)
        let router = Router()
        WarehouseRoutes(store: store, tail: tail, adminToken: try access.adminToken()).register(on: router)
        try await RoleServer.run(
            role: "wms", id: id, http: http, router: router, registry: registry, ready: { tail.connected }, services: [tail, shipper], logger: logger)
    }
}
