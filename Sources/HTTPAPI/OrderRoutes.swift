import Hummingbird
import Logging
import Node
import OrderDomain

/// The api-node routes of DESIGN §9 over an order service: the local
/// engine, or the dispatcher that reaches each order's leader.
public struct OrderRoutes: Sendable {
    public let service: any OrderService

    public init(service: any OrderService) {
        self.service = service
    }

    public func register(on router: Router<some RequestContext>) {
        router.post("orders") { request, _ in try await respond { try await placeOrder(request) } }
        router.get("orders/:id") { _, context in try await respond { try await getOrder(context) } }
        router.post("orders/:id/payments") { request, context in try await respond { try await pay(request, context) } }
        router.post("orders/:id/cancel") { request, context in try await respond { try await cancel(request, context) } }
        router.post("orders/:id/shipments") { request, context in try await respond { try await ship(request, context) } }
        router.get("products") { request, _ in try await respond { try products(request) } }
        router.get("products/:sku") { _, context in try await respond { try product(context) } }
    }

    /// Maps every refusal to the error shape; storage trouble is a 503 that
    /// says what failed, since nothing was acknowledged.
    private func respond(_ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch let error as APIError {
            return error.response()
        } catch let error as EngineError {
            return APIError(.serviceUnavailable, "unavailable", error.description).response()
        }
    }

    private func placeOrder(_ request: Request) async throws -> Response {
        let body = try await RequestBody.read(request)
        let id = try body.id("id")
        let customer = try body.string("customer")
        var lines: [OrderLineRequest] = []
        for line in try body.objects("lines") {
            let sku = try line.string("sku")
            let qty = try line.integer("qty")
            guard let count = Int(exactly: qty) else { throw APIError.badRequest("invalid_qty", "qty is out of range") }
            lines.append(OrderLineRequest(sku: sku, qty: count))
        }
        let result = try await run(id, .place(customer: customer, lines: lines))
        return JSONResponse.make(status: result.outcome == .replayed ? .ok : .created, OrderView(result.state))
    }

    private func getOrder(_ context: some RequestContext) async throws -> Response {
        let id = try PathInput.orderID(context)
        let state = try await service.state(of: id)
        guard state.exists else {
            let held = state.payments.count
            let detail = held > 0 ? "; \(held) payment(s) recorded while waiting for it" : ""
            throw APIError(.notFound, "not_found", "order \(id) does not exist\(detail)")
        }
        return JSONResponse.make(status: .ok, OrderView(state))
    }

    private func pay(_ request: Request, _ context: some RequestContext) async throws -> Response {
        let orderID = try PathInput.orderID(context)
        let body = try await RequestBody.read(request)
        let paymentID = try body.id("id")
        let amount = try body.integer("amount_cents")
        let result = try await run(orderID, .pay(paymentID: paymentID, amountCents: amount))
        guard let payment = result.state.payment(paymentID) else {
            throw APIError(.internalServerError, "internal", "payment \(paymentID) missing after it was recorded")
        }
        let status: HTTPResponse.Status
        switch result.outcome {
        case .created: status = .created
        case .held: status = .accepted
        case .replayed: status = .ok
        }
        let reply = PaymentReply(
            order_id: orderID.rawValue, payment: PaymentView(payment),
            order: result.state.exists ? OrderView(result.state) : nil)
        return JSONResponse.make(status: status, reply)
    }

    private func cancel(_ request: Request, _ context: some RequestContext) async throws -> Response {
        let orderID = try PathInput.orderID(context)
        // The body is optional here: `{}` or `{"reason": "..."}` or nothing.
        let reason = try await RequestBody.readIfPresent(request)?.optionalString("reason")
        let result = try await run(orderID, .cancel(reason: reason))
        return JSONResponse.make(status: .ok, OrderView(result.state))
    }

    private func ship(_ request: Request, _ context: some RequestContext) async throws -> Response {
        let orderID = try PathInput.orderID(context)
        let body = try await RequestBody.read(request)
        let shipmentID = try body.id("id")
        let result = try await run(orderID, .ship(shipmentID: shipmentID))
        return JSONResponse.make(status: result.outcome == .replayed ? .ok : .created, OrderView(result.state))
    }

    private func products(_ request: Request) throws -> Response {
        let query = request.uri.queryParameters
        var limit = 100
        if let raw = query.get("limit") {
            guard let value = Int(raw), (1...1000).contains(value) else {
                throw APIError.badRequest("invalid_limit", "limit must be an integer from 1 to 1000")
            }
            limit = value
        }
        let after = query.get("after")
        let page = service.catalog.page(after: after, limit: limit)
        return JSONResponse.make(status: .ok, ProductPage(products: page.products.map(ProductView.init), next: page.next))
    }

    private func product(_ context: some RequestContext) throws -> Response {
        let sku = context.parameters.get("sku") ?? ""
        guard let product = service.catalog.product(sku: sku) else {
            throw APIError(.notFound, "not_found", "no product with sku '\(sku)'")
        }
        return JSONResponse.make(status: .ok, ProductView(product))
    }

    private func run(_ orderID: ClientID, _ command: OrderCommand) async throws -> CommandResult {
        switch try await service.execute(orderID, command) {
        case .success(let result): return result
        case .failure(let error): throw APIError.from(error)
        }
    }
}
