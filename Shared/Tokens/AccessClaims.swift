import Foundation
import JWTKit
import MessengerContracts

/// The claims of an access token (protocol.md, "Tokens"): who (`sub`), when (`iat`, `exp`),
/// which token (`jti`), by whom (`iss`) and for whom (`aud`), plus the login session it belongs
/// to (`sid`, the id of its refresh token family), by which a logout or a password change
/// revokes it before it expires (docs/auth.md, "Revoked sessions").
public struct AccessClaims: JWTPayload, Equatable {
    public var sub: SubjectClaim
    public var iat: IssuedAtClaim
    public var exp: ExpirationClaim
    public var jti: IDClaim
    public var iss: IssuerClaim
    public var aud: AudienceClaim
    /// The login session; absent from tokens that no session can revoke (signed elsewhere).
    public var sid: String?

    public init(userID: UUID, session: UUID?, issuedAt: Date, lifetime: Duration, issuer: String, audience: String) {
        self.sub = SubjectClaim(value: userID.lowercasedText)
        // Whole seconds, as JWT NumericDate values usually are.
        let issued = Date(timeIntervalSince1970: issuedAt.timeIntervalSince1970.rounded(.down))
        self.iat = IssuedAtClaim(value: issued)
        self.exp = ExpirationClaim(value: issued.addingTimeInterval(Double(lifetime.components.seconds)))
        self.jti = IDClaim(value: UUID.v7().lowercasedText)
        self.iss = IssuerClaim(value: issuer)
        self.aud = AudienceClaim(value: [audience])
        self.sid = session?.lowercasedText
    }

    /// Signature checks come first (jwt-kit); this checks expiry, with no leeway.
    public func verify(using algorithm: some JWTAlgorithm) async throws {
        try self.exp.verifyNotExpired()
    }
}
