/// Who issues access tokens and for whom (`JWT_ISSUER`, `JWT_AUDIENCE`); the verifier and the
/// issuer must agree.
public struct TokenAudience: Sendable, Hashable {
    public var issuer: String
    public var audience: String

    public init(issuer: String = "messenger-auth", audience: String = "messenger") {
        self.issuer = issuer
        self.audience = audience
    }
}
