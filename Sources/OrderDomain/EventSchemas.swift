/// Each event type's payload schema: the version this release writes, and an
/// upcaster from every older version to the next, so a payload written by
/// any earlier release reads as today's shape.
///
/// Upcasting happens where events are read (`OrderEvent.decode`, which every
/// fold, copy, takeover, feed and rebuild goes through), never by rewriting
/// a log: a log keeps the bytes it was given. A payload of a version newer
/// than this release knows is refused, never folded as if it were this one.
/// docs/events.md lists every type, its fields per version and its upcasters.
public struct EventSchemas: Sendable {
    /// Turns the fields of a payload of version v (without `v`) into those of
    /// version v + 1.
    public typealias Upcaster = @Sendable ([(String, JSONValue)]) throws(EventDecodingError) -> [(String, JSONValue)]

    public struct Schema: Sendable {
        public let current: Int
        /// `upcasters[v]` reads version v as version v + 1.
        public let upcasters: [Int: Upcaster]

        public init(current: Int, upcasters: [Int: Upcaster] = [:]) {
            self.current = current
            self.upcasters = upcasters
        }
    }

    public let byType: [String: Schema]
    /// The version of every type when they all have the same one (a cheap
    /// check for the byte decoder's fast path).
    let uniformCurrent: Int?

    public init(_ byType: [String: Schema]) {
        self.byType = byType
        let versions = Set(byType.values.map(\.current))
        uniformCurrent = versions.count == 1 ? versions.first : nil
    }

    /// Orderly's event types as this release writes them. Every type is at
    /// version 1: none has changed shape since the first release, so there is
    /// no upcaster yet. A change to a type's shape raises its version here and
    /// adds the upcaster from the version before (see docs/events.md).
    public static let orderly = EventSchemas(Dictionary(uniqueKeysWithValues: OrderEvent.typeNames.map { ($0, Schema(current: 1)) }))

    /// The version this release writes for `typeName`, if it knows the type.
    public func current(of typeName: String) -> Int? { byType[typeName]?.current }

    /// Versions between 1 and a type's current one that no upcaster reads:
    /// empty for a consistent table (a test holds `orderly` to it).
    public var gaps: [(type: String, version: Int)] {
        byType.sorted { $0.key < $1.key }.flatMap { type, schema in
            (1..<max(schema.current, 1)).filter { schema.upcasters[$0] == nil }.map { (type, $0) }
        }
    }

    /// The payload brought to its type's current version, `v` first. A
    /// payload at the current version comes back as it is.
    public func upcast(typeName: String, payload: JSONValue) throws(EventDecodingError) -> JSONValue {
        guard let schema = byType[typeName] else { throw EventDecodingError("unknown event type \(typeName)") }
        guard case .object(let fields) = payload else { throw EventDecodingError("\(typeName) payload: not a JSON object") }
        guard case .integer(let written)? = payload["v"], written >= 1 else {
            throw EventDecodingError("\(typeName) payload: schema version v is missing or invalid")
        }
        if written == Int64(schema.current) { return payload }
        guard written < Int64(schema.current) else {
            throw EventDecodingError(
                "\(typeName) payload: schema version v \(written) is newer than this release reads (\(schema.current)); read it with a newer release")
        }
        var body = fields.filter { $0.0 != "v" }
        for version in Int(written)..<schema.current {
            guard let upcaster = schema.upcasters[version] else {
                throw EventDecodingError("\(typeName) payload: no upcaster from schema version \(version)")
            }
            body = try upcaster(body)
        }
        return .object([("v", .integer(Int64(schema.current)))] + body)
    }
}

extension OrderEvent {
    /// A stored payload at its type's current version: as it is when it
    /// already is, else decoded (upcast) and written again in today's shape.
    /// The event feed sends this, so a consumer sees one shape per type.
    public static func currentPayload(typeName: String, payload: String, schemas: EventSchemas = .orderly) throws(EventDecodingError) -> String {
        if let current = schemas.current(of: typeName), payload.utf8.starts(with: "{\"v\":\(current),".utf8) || payload == "{\"v\":\(current)}" {
            return payload
        }
        let stored = try decodeStored(typeName: typeName, payload: payload, schemas: schemas)
        return stored.event.payloadJSON(schemas: schemas, after: stored.after)
    }
}
