import Foundation

/// The id of an entity clients see (users, threads, messages): a UUID written in lowercase, as
/// RFC 9562 asks, where Foundation's `UUID` would encode uppercase. Any case is accepted.
public struct EntityID: Hashable, Sendable, Codable, CustomStringConvertible {
    public var uuid: UUID

    public init(_ uuid: UUID) { self.uuid = uuid }

    public init?(_ text: String) {
        guard let uuid = UUID(text: text) else { return nil }
        self.uuid = uuid
    }

    /// A new time-ordered id.
    public static func make() -> EntityID { EntityID(.v7()) }

    public var description: String { self.uuid.lowercasedText }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        guard let id = EntityID(try container.decode(String.self)) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "expected a UUID")
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.description)
    }
}
