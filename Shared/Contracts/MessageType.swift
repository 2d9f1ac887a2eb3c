/// The name of a message contract with its version, for example `auth.ping.v1`.
///
/// Contracts evolve additively: a new optional field keeps the version; a breaking change is a new
/// type name (`.v2`) served beside the old one until every consumer has moved.
public struct MessageType: RawRepresentable, Hashable, Codable, Sendable, ExpressibleByStringLiteral,
    CustomStringConvertible
{
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }

    /// The version suffix (`1` for `auth.ping.v1`), or nil when the name carries none.
    public var version: Int? {
        guard let dot = self.rawValue.lastIndex(of: "."),
            self.rawValue[self.rawValue.index(after: dot)...].hasPrefix("v")
        else { return nil }
        return Int(self.rawValue[self.rawValue.index(dot, offsetBy: 2)...])
    }

    public var description: String { self.rawValue }
}
