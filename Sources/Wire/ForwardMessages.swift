import NIOCore
import OrderDomain

/// What one node asks of an order's leader: a command, or its state.
public enum ForwardedCall: Sendable, Equatable {
    case command(OrderCommand)
    case read
}

public struct ForwardRequest: Sendable, Equatable {
    /// Set by the transport (it matches the reply to the call).
    public var correlationID: UInt64
    /// How long the sender waits; the leader drops work it cannot finish in time.
    public var timeoutMs: UInt32
    public var orderID: ClientID
    public var call: ForwardedCall

    public init(correlationID: UInt64 = 0, timeoutMs: UInt32, orderID: ClientID, call: ForwardedCall) {
        self.correlationID = correlationID
        self.timeoutMs = timeoutMs
        self.orderID = orderID
        self.call = call
    }
}

/// The leader's answer, as the local engine would have given it.
public enum ForwardReply: Sendable, Equatable {
    case done(outcome: Outcome?, state: OrderState)
    case refused(DomainError)
    case unavailable(String)
}

public enum ForwardCodec {
    public static let snapshotBytesMax = 1 << 20

    public static func encode(_ request: ForwardRequest) -> Frame {
        var buffer = ByteBuffer()
        buffer.writeInteger(request.correlationID)
        buffer.writeInteger(request.timeoutMs)
        buffer.writeLengthPrefixed(request.orderID.rawValue)
        switch request.call {
        case .read:
            buffer.writeInteger(UInt8(0))
        case .command(.place(let customer, let lines)):
            buffer.writeInteger(UInt8(1))
            buffer.writeLengthPrefixed(customer)
            buffer.writeInteger(UInt16(lines.count))
            for line in lines {
                buffer.writeLengthPrefixed(line.sku)
                buffer.writeInteger(Int64(line.qty))
            }
        case .command(.pay(let paymentID, let amount)):
            buffer.writeInteger(UInt8(2))
            buffer.writeLengthPrefixed(paymentID.rawValue)
            buffer.writeInteger(amount)
        case .command(.cancel(let reason)):
            buffer.writeInteger(UInt8(3))
            buffer.writeInteger(UInt8(reason == nil ? 0 : 1))
            buffer.writeLengthPrefixed(reason ?? "")
        case .command(.ship(let shipmentID)):
            buffer.writeInteger(UInt8(4))
            buffer.writeLengthPrefixed(shipmentID.rawValue)
        case .command(.expireHeldPayments):
            buffer.writeInteger(UInt8(5))
        }
        return Frame(type: ForwardFrame.request.rawValue, payload: buffer)
    }

    public static func decodeRequest(_ frame: Frame) throws(WireError) -> ForwardRequest {
        var reader = PayloadReader(frame.payload)
        let correlationID = try reader.integer("correlation id", as: UInt64.self)
        let timeoutMs = try reader.integer("timeout", as: UInt32.self)
        let orderID = try id(&reader, "order id")
        let call: ForwardedCall
        switch try reader.integer("call", as: UInt8.self) {
        case 0:
            call = .read
        case 1:
            let customer = try reader.string("customer", max: WireLimits.clientTextBytesMax)
            let count = Int(try reader.integer("line count", as: UInt16.self))
            guard count <= Limits.linesMax * 2 else { throw .malformed("\(count) lines") }
            var lines: [OrderLineRequest] = []
            for _ in 0..<count {
                let sku = try reader.string("sku", max: WireLimits.clientTextBytesMax)
                let qty = try reader.integer("qty", as: Int64.self)
                guard let qty = Int(exactly: qty) else { throw .malformed("qty") }
                lines.append(OrderLineRequest(sku: sku, qty: qty))
            }
            call = .command(.place(customer: customer, lines: lines))
        case 2:
            call = .command(.pay(paymentID: try id(&reader, "payment id"), amountCents: try reader.integer("amount", as: Int64.self)))
        case 3:
            let hasReason = try reader.integer("has reason", as: UInt8.self) == 1
            let reason = try reader.string("reason", max: WireLimits.clientTextBytesMax)
            call = .command(.cancel(reason: hasReason ? reason : nil))
        case 4:
            call = .command(.ship(shipmentID: try id(&reader, "shipment id")))
        case 5:
            call = .command(.expireHeldPayments)
        case let other:
            throw .malformed("unknown call \(other)")
        }
        try reader.finish("forward request")
        return ForwardRequest(correlationID: correlationID, timeoutMs: timeoutMs, orderID: orderID, call: call)
    }

    public static func encode(_ reply: ForwardReply, correlationID: UInt64) -> Frame {
        var buffer = ByteBuffer()
        buffer.writeInteger(correlationID)
        switch reply {
        case .done(let outcome, let state):
            buffer.writeInteger(UInt8(0))
            buffer.writeInteger(outcome.map(outcomeCode) ?? 0)
            let snapshot = state.snapshotJSON()
            buffer.writeInteger(UInt32(snapshot.utf8.count))
            buffer.writeString(snapshot)
        case .refused(let error):
            buffer.writeInteger(UInt8(1))
            let (kind, code, message): (UInt8, String, String)
            switch error {
            case .invalid(let invalid, let text): (kind, code, message) = (0, invalid, text)
            case .notFound(let text): (kind, code, message) = (1, "", text)
            case .conflict(let conflict, let text): (kind, code, message) = (2, conflict, text)
            }
            // A message may hold the client's text (an unknown sku): cut to
            // what the entry node reads.
            buffer.writeInteger(kind)
            buffer.writeLengthPrefixed(code.prefix(utf8Bytes: WireLimits.stringBytesMax))
            buffer.writeLengthPrefixed(message.prefix(utf8Bytes: WireLimits.messageBytesMax))
        case .unavailable(let message):
            buffer.writeInteger(UInt8(2))
            buffer.writeLengthPrefixed(message.prefix(utf8Bytes: WireLimits.messageBytesMax))
        }
        return Frame(type: ForwardFrame.reply.rawValue, payload: buffer)
    }

    public static func decodeReply(_ frame: Frame) throws(WireError) -> (correlationID: UInt64, reply: ForwardReply) {
        var reader = PayloadReader(frame.payload)
        let correlationID = try reader.integer("correlation id", as: UInt64.self)
        let reply: ForwardReply
        switch try reader.integer("status", as: UInt8.self) {
        case 0:
            let outcome = try reader.integer("outcome", as: UInt8.self)
            let length = Int(try reader.integer("snapshot length", as: UInt32.self))
            guard length <= snapshotBytesMax, let text = reader.buffer.readString(length: length) else { throw .malformed("snapshot") }
            let state: OrderState
            do {
                state = try OrderState.fromSnapshot(text)
            } catch {
                throw .malformed("snapshot: \(error)")
            }
            reply = .done(outcome: outcomeFrom(outcome), state: state)
        case 1:
            let kind = try reader.integer("error kind", as: UInt8.self)
            let code = try reader.string("code")
            let message = try reader.string("message", max: WireLimits.messageBytesMax)
            switch kind {
            case 0: reply = .refused(.invalid(code: code, message: message))
            case 1: reply = .refused(.notFound(message: message))
            case 2: reply = .refused(.conflict(code: code, message: message))
            default: throw .malformed("error kind \(kind)")
            }
        case 2:
            reply = .unavailable(try reader.string("message", max: WireLimits.messageBytesMax))
        case let other:
            throw .malformed("reply status \(other)")
        }
        try reader.finish("forward reply")
        return (correlationID, reply)
    }

    private static func id(_ reader: inout PayloadReader, _ what: String) throws(WireError) -> ClientID {
        guard let id = ClientID(try reader.string(what)) else { throw .malformed("\(what) out of pattern") }
        return id
    }

    private static func outcomeCode(_ outcome: Outcome) -> UInt8 {
        switch outcome {
        case .created: return 1
        case .held: return 2
        case .replayed: return 3
        }
    }

    private static func outcomeFrom(_ code: UInt8) -> Outcome? {
        switch code {
        case 1: return .created
        case 2: return .held
        case 3: return .replayed
        default: return nil
        }
    }
}
