import ArgumentParser
import AsyncHTTPClient
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

    @OptionGroup
    var options: FollowerRoleOptions

    @Option(help: "Time from payment to shipment (e.g. 2s, 500ms, 0s).")
    var handlingTime: DurationArgument = DurationArgument(argument: "1s")!

    @OptionGroup(title: "HTTPS to the API nodes")
    var apiHTTPS: HTTPSClientOptions

    func run() async throws {
        let role = try options.start(.init(name: "wms", defaultHTTP: "127.0.0.1:8091"))
        let store = try WarehouseStore(path: role.file, catalog: .standard)
        let tail = LogTail(sink: store, clients: role.clients, config: .init(seeds: role.seeds), id: role.id, logger: role.logger)
        let apiTLS = try apiHTTPS.client()
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.tlsConfiguration = apiTLS
        let client = apiTLS == nil ? HTTPClient.shared : HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
        let shipper = Shipper(
            store: store, tail: tail, handlingMs: handlingTime.milliseconds, client: client, scheme: apiTLS == nil ? "http" : "https",
            logger: role.logger)
        let router = Router()
        WarehouseRoutes(store: store, tail: tail, adminToken: role.adminToken).register(on: router)
        try await RoleServer.run(
            role: "wms", id: role.id, http: role.http, router: router, registry: role.registry, tls: role.tls, ready: { tail.connected },
            services: [tail, shipper], logger: role.logger)
    }
}
