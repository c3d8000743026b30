import Membership
import NIOCore
import OrderDomain
import Replication

/// What one node sends another without waiting for an answer.
public enum PeerMessage: Sendable, Equatable {
    /// Membership: the sender's view.
    case gossip(GossipDigest)
    /// A follower's view changed: the nodes it lets lead (see `VouchView`).
    case vouch(follower: String, VouchView)
}

/// What one node asks another, and waits for.
public enum PeerRequest: Sendable, Equatable {
    /// Run a command (or read) on the order's leader.
    case forward(ForwardRequest)
    /// Events of a log, or of one order.
    case fetch(FetchRequest)
    /// The node's view of the members (roles outside the ring ask).
    case view
    /// Grant a leadership term.
    case grant(GrantRequest)
    /// What the peer holds of the asking node (its terms granted, whether
    /// it holds anything at all).
    case recovery(RecoveryRequest)
    /// Store these copies of an order's events (see `StoreRequest`).
    case store(StoreRequest)
}

/// The answer to a `PeerRequest`, of the same kind.
public enum PeerReply: Sendable, Equatable {
    case forward(ForwardReply)
    case fetch(FetchReply)
    case view([Member])
    case grant(GrantReply)
    case recovery(RecoveryReply)
    case store(StoreReply)
}

extension PeerRequest {
    /// The reply that refuses this request for `reason` (a node that is
    /// starting, or out of service).
    public func refused(_ reason: String) -> PeerReply {
        switch self {
        case .forward: return .forward(.unavailable(reason))
        case .fetch: return .fetch(FetchReply(events: [], throughOffset: 0, holderLastOffset: 0, refusal: reason))
        case .view: return .view([])
        case .grant: return .grant(GrantReply(granted: false, promise: .none, reason: reason))
        case .recovery: return .recovery(RecoveryReply(promises: [:], holdsAnything: false, recovering: false, refusal: reason))
        case .store: return .store(StoreReply(stored: 0, refusal: reason))
        }
    }
}

/// A decoded frame of the application range.
public enum PeerInbound: Sendable, Equatable {
    case message(PeerMessage)
    case request(correlationID: UInt64, PeerRequest)
    case reply(correlationID: UInt64, PeerReply)
}

/// The frames of every application message: one encoder and one decoder
/// for the transport, over the codecs of each protocol.
public enum PeerCodec {
    public static func encode(_ message: PeerMessage) -> Frame {
        switch message {
        case .gossip(let digest):
            return Frame(type: ClusterFrame.gossip.rawValue, payload: ByteBuffer(bytes: digest.encoded()))
        case .vouch(let follower, let view):
            return ReplicationCodec.encodeVouch(follower: follower, view)
        }
    }

    public static func encode(_ request: PeerRequest, correlationID: UInt64) -> Frame {
        switch request {
        case .forward(var forward):
            forward.correlationID = correlationID
            return ForwardCodec.encode(forward)
        case .fetch(var fetch):
            fetch.correlationID = correlationID
            return ReplicationCodec.encode(fetch)
        case .view:
            var payload = ByteBuffer()
            payload.writeInteger(correlationID)
            return Frame(type: ClusterFrame.viewRequest.rawValue, payload: payload)
        case .grant(let grant):
            return GrantCodec.encode(grant, correlationID: correlationID)
        case .recovery(let recovery):
            return RecoveryCodec.encode(recovery, correlationID: correlationID)
        case .store(let store):
            return StoreCodec.encode(store, correlationID: correlationID)
        }
    }

    public static func encode(_ reply: PeerReply, correlationID: UInt64) -> Frame {
        switch reply {
        case .forward(let forward):
            return ForwardCodec.encode(forward, correlationID: correlationID)
        case .fetch(let fetch):
            return ReplicationCodec.encode(fetch, correlationID: correlationID)
        case .view(let members):
            var payload = ByteBuffer()
            payload.writeInteger(correlationID)
            payload.writeBytes(GossipDigest(members: members).encoded())
            return Frame(type: ClusterFrame.viewReply.rawValue, payload: payload)
        case .grant(let grant):
            return GrantCodec.encode(grant, correlationID: correlationID)
        case .recovery(let recovery):
            return RecoveryCodec.encode(recovery, correlationID: correlationID)
        case .store(let store):
            return StoreCodec.encode(store, correlationID: correlationID)
        }
    }

    /// Decodes an application frame; nil for a type this release does not
    /// know (the caller drops it). Throws for a known type whose payload is
    /// malformed.
    public static func decode(_ frame: Frame) throws(WireError) -> PeerInbound? {
        switch frame.type {
        case ClusterFrame.gossip.rawValue:
            do {
                return .message(.gossip(try GossipDigest.decode(Array(frame.payload.readableBytesView))))
            } catch {
                throw .malformed("gossip: \(error)")
            }
        case ReplicationFrame.vouch.rawValue:
            let (follower, view) = try ReplicationCodec.decodeVouch(frame)
            return .message(.vouch(follower: follower, view))
        case ForwardFrame.request.rawValue:
            let request = try ForwardCodec.decodeRequest(frame)
            return .request(correlationID: request.correlationID, .forward(request))
        case ReplicationFrame.fetch.rawValue:
            let request = try ReplicationCodec.decodeRequest(frame)
            return .request(correlationID: request.correlationID, .fetch(request))
        case ClusterFrame.viewRequest.rawValue:
            guard frame.payload.readableBytes == 8, let correlationID = frame.payload.getInteger(at: frame.payload.readerIndex, as: UInt64.self)
            else { throw .malformed("view request: expected an 8-byte correlation id") }
            return .request(correlationID: correlationID, .view)
        case ReplicationFrame.grant.rawValue:
            let (correlationID, grant) = try GrantCodec.decodeRequest(frame)
            return .request(correlationID: correlationID, .grant(grant))
        case ReplicationFrame.grantReply.rawValue:
            let (correlationID, reply) = try GrantCodec.decodeReply(frame)
            return .reply(correlationID: correlationID, .grant(reply))
        case ReplicationFrame.recovery.rawValue:
            let (correlationID, recovery) = try RecoveryCodec.decodeRequest(frame)
            return .request(correlationID: correlationID, .recovery(recovery))
        case ReplicationFrame.recoveryReply.rawValue:
            let (correlationID, reply) = try RecoveryCodec.decodeReply(frame)
            return .reply(correlationID: correlationID, .recovery(reply))
        case ReplicationFrame.store.rawValue:
            let (correlationID, store) = try StoreCodec.decodeRequest(frame)
            return .request(correlationID: correlationID, .store(store))
        case ReplicationFrame.storeReply.rawValue:
            let (correlationID, reply) = try StoreCodec.decodeReply(frame)
            return .reply(correlationID: correlationID, .store(reply))
        case ForwardFrame.reply.rawValue:
            let (correlationID, reply) = try ForwardCodec.decodeReply(frame)
            return .reply(correlationID: correlationID, .forward(reply))
        case ReplicationFrame.batch.rawValue:
            guard let correlationID = frame.payload.getInteger(at: frame.payload.readerIndex, as: UInt64.self) else {
                throw .malformed("batch without a correlation id")
            }
            return .reply(correlationID: correlationID, .fetch(try ReplicationCodec.decodeReply(frame)))
        case ClusterFrame.viewReply.rawValue:
            var payload = frame.payload
            guard let correlationID = payload.readInteger(as: UInt64.self) else { throw .malformed("view reply without a correlation id") }
            do {
                return .reply(correlationID: correlationID, .view(try GossipDigest.decode(Array(payload.readableBytesView)).members))
            } catch {
                throw .malformed("view reply: \(error)")
            }
        default:
            return nil
        }
    }

    /// The correlation id a reply frame starts with, without decoding the
    /// rest (the caller decodes it once it has found its call).
    public static func replyCorrelationID(_ frame: Frame) -> UInt64? {
        guard isReply(frame.type) else { return nil }
        return frame.payload.getInteger(at: frame.payload.readerIndex, as: UInt64.self)
    }

    /// Whether frames of this type answer a call (and start with its
    /// correlation id).
    public static func isReply(_ type: UInt8) -> Bool {
        type == ForwardFrame.reply.rawValue || type == ReplicationFrame.batch.rawValue || type == ClusterFrame.viewReply.rawValue
            || type == ReplicationFrame.grantReply.rawValue || type == ReplicationFrame.recoveryReply.rawValue
            || type == ReplicationFrame.storeReply.rawValue
    }
}
