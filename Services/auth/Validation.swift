import Foundation
import MessengerContracts

/// The value rules of docs/auth.md; each failure is `invalid_argument` naming the field.
enum Validation {
    static func username(_ raw: String) throws -> String {
        let username = raw.lowercased()
        let allowed = username.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "."
        }
        guard allowed, (3...32).contains(username.unicodeScalars.count) else {
            throw ServiceError.invalidArgument("username must be 3 to 32 characters of a-z, 0-9, '_' and '.'")
        }
        return username
    }

    /// Trimmed, lowercased and in NFC (`josé` typed as one code point or as `e` and an accent
    /// is one address, which logs in either way): a local part, `@`, and a domain of at least
    /// two non-empty labels; every character visible (no spaces, controls, or format
    /// characters such as U+200B or the bidirectional overrides).
    static func email(_ raw: String) throws -> String {
        let email = Self.login(raw)
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        let labels = parts.count == 2 ? parts[1].split(separator: ".", omittingEmptySubsequences: false) : []
        let valid =
            email.utf8.count <= 254 && parts.count == 2 && !parts[0].isEmpty && labels.count >= 2
            && labels.allSatisfy { !$0.isEmpty } && email.unicodeScalars.allSatisfy(ShownName.isVisible)
        guard valid else { throw ServiceError.invalidArgument("email is not a valid address") }
        return email
    }

    /// A login as accounts are looked up by: trimmed, lowercased, in NFC.
    static func login(_ raw: String) -> String {
        raw.trimmingCharacters(in: .whitespacesAndNewlines).lowercased().precomposedStringWithCanonicalMapping
    }

    static func password(_ password: String, field: String = "password") throws {
        guard (8...128).contains(password.unicodeScalars.count) else {
            throw ServiceError.invalidArgument("\(field) must be 8 to 128 characters")
        }
    }

    /// The contract's default for ``displayName(_:maximumLength:)`` (`DISPLAY_NAME_MAX_LENGTH`).
    static let defaultMaximumDisplayNameLength = 64

    /// Trimmed and in NFC (`é` typed as one code point or as `e` and an accent is one name,
    /// which search then finds either way), 1...`maximumLength` code points, and shown as it is
    /// written (``ShownName``).
    static func displayName(_ raw: String, maximumLength: Int = defaultMaximumDisplayNameLength) throws -> String {
        let name = raw.trimmingCharacters(in: .whitespacesAndNewlines).precomposedStringWithCanonicalMapping
        guard (1...maximumLength).contains(name.unicodeScalars.count) else {
            throw ServiceError.invalidArgument("displayName must be 1 to \(maximumLength) characters")
        }
        try ShownName.check(name, field: "displayName")
        return name
    }

    /// A search query is compared with names in the same form they are stored in.
    static func searchQuery(_ raw: String) throws -> String {
        try Self.text(raw.trimmingCharacters(in: .whitespacesAndNewlines).precomposedStringWithCanonicalMapping, field: "query")
    }

    /// Free text that goes to the database: control characters (U+0000 to U+001F, U+007F to
    /// U+009F) are refused, U+0000 above all, which PostgreSQL's text cannot hold.
    static func text(_ text: String, field: String) throws -> String {
        guard !Self.hasControlCharacters(text) else {
            throw ServiceError.invalidArgument("\(field) must not contain control characters")
        }
        return text
    }

    /// Whether `login` (trimmed and lowercased) could name an account: a username or an email
    /// address, so at most 254 characters and no control characters.
    static func canBeLogin(_ login: String) -> Bool {
        !login.isEmpty && login.unicodeScalars.count <= 254 && !Self.hasControlCharacters(login)
    }

    private static func hasControlCharacters(_ text: String) -> Bool {
        text.unicodeScalars.contains { $0.properties.generalCategory == .control }
    }
}
