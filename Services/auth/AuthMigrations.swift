import MessengerPostgres
import MessengerServiceKit

/// The `auth` schema's migrations, oldest first. Never edit a shipped one; append.
enum AuthMigrations {
    static let all: [Migration] = [
        .inbox, users, refreshTokens, loginFailures, signingKeys, .outbox(version: 6), .outboxDeletesPublished(version: 7),
        revokedSessions, displayNamesInNFC, endedSessions, emailsInNFC, refreshTokensByExpiry, refreshTokensSpentBy,
        registrationCounts, endedSessionsInOrder, refreshTokensByParent, sparedSessions, knownLoginAddresses,
        accessTokenExpiries,
    ]

    static let users = Migration(
        version: 2, name: "users",
        statements: [
            """
            CREATE TABLE users (
                id uuid PRIMARY KEY,
                username text NOT NULL,
                email text NOT NULL,
                display_name text NOT NULL,
                password_hash text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            "CREATE UNIQUE INDEX users_username ON users (lower(username))",
            "CREATE UNIQUE INDEX users_email ON users (lower(email))",
            "CREATE INDEX users_username_prefix ON users (lower(username) text_pattern_ops)",
            "CREATE INDEX users_display_name_prefix ON users (lower(display_name) text_pattern_ops)",
        ])

    static let refreshTokens = Migration(
        version: 3, name: "refresh_tokens",
        statements: [
            """
            CREATE TABLE refresh_tokens (
                id uuid PRIMARY KEY,
                family_id uuid NOT NULL,
                user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                token_hash bytea NOT NULL UNIQUE,
                replaces uuid REFERENCES refresh_tokens (id) ON DELETE SET NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                expires_at timestamptz NOT NULL,
                spent_at timestamptz,
                revoked_at timestamptz
            )
            """,
            "CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id)",
            "CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id) WHERE revoked_at IS NULL",
        ])

    static let loginFailures = Migration(
        version: 4, name: "login_failures",
        statements: [
            """
            CREATE TABLE login_failures (
                key text PRIMARY KEY,
                failures integer NOT NULL,
                window_started_at timestamptz NOT NULL
            )
            """
        ])

    /// The login sessions whose access tokens are revoked, until the last of them expires
    /// (``SessionRevocations``).
    static let revokedSessions = Migration(
        version: 8, name: "revoked_sessions",
        statements: [
            """
            CREATE TABLE revoked_sessions (
                family_id uuid PRIMARY KEY,
                user_id uuid NOT NULL,
                until timestamptz NOT NULL
            )
            """,
            "CREATE INDEX revoked_sessions_until ON revoked_sessions (until)",
        ])

    /// The generated signing key when none is configured (one row; replicas share it).
    static let signingKeys = Migration(
        version: 5, name: "signing_keys",
        statements: [
            """
            CREATE TABLE signing_keys (
                kid text PRIMARY KEY,
                private_key bytea NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now()
            )
            """
        ])

    /// Display names are stored in NFC from now on (`Validation.displayName`); the ones stored
    /// before are brought to it, so that search finds them. Other services' copies are display
    /// data only, and render the same in either form.
    static let displayNamesInNFC = Migration(
        version: 9, name: "display_names_in_nfc",
        statements: [
            "UPDATE users SET display_name = normalize(display_name, NFC) WHERE display_name IS NOT NFC NORMALIZED"
        ])

    /// Every login session that was ended and announced (a logout, a reuse, a password change),
    /// for good: a session whose refresh tokens were revoked but that was spared (the caller of
    /// a password change) is not in it, and is ended by a later logout or password change.
    /// Sessions announced before are carried over from `revoked_sessions`.
    static let endedSessions = Migration(
        version: 10, name: "ended_sessions",
        statements: [
            """
            CREATE TABLE ended_sessions (
                family_id uuid PRIMARY KEY,
                user_id uuid NOT NULL,
                ended_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            "INSERT INTO ended_sessions (family_id, user_id) SELECT family_id, user_id FROM revoked_sessions",
        ])

    /// Emails are stored in NFC since the thirty-seventh session, and logins are looked up in
    /// NFC: the ones stored before are brought to it, except an address that another account
    /// has in another form (two accounts were possible then), which keeps its form; its account
    /// logs in by username.
    static let emailsInNFC = Migration(
        version: 11, name: "emails_in_nfc",
        statements: [
            """
            UPDATE users u SET email = normalize(u.email, NFC)
            WHERE u.email IS NOT NFC NORMALIZED
              AND NOT EXISTS (
                  SELECT 1 FROM users o WHERE o.id <> u.id AND lower(normalize(o.email, NFC)) = lower(normalize(u.email, NFC)))
            """
        ])

    /// The pruning job (``AuthPruner``) finds expired refresh tokens by this index.
    static let refreshTokensByExpiry = Migration(
        version: 12, name: "refresh_tokens_by_expiry",
        statements: ["CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at)"],
        // Built without holding logins and refreshes (the forty-eighth session; the same checksum).
        buildsIndexesConcurrently: true)

    /// The request that spent a refresh token (``RefreshTokenStore/rotate(_:request:before:)``):
    /// the same request delivered again is not a reuse.
    static let refreshTokensSpentBy = Migration(
        version: 13, name: "refresh_tokens_spent_by",
        statements: ["ALTER TABLE refresh_tokens ADD COLUMN spent_by uuid"])

    /// Accounts registered per client address and window (``RegistrationThrottle``).
    static let registrationCounts = Migration(
        version: 14, name: "registration_counts",
        statements: [
            """
            CREATE TABLE registration_counts (
                key text PRIMARY KEY,
                registrations integer NOT NULL,
                window_started_at timestamptz NOT NULL
            )
            """
        ])

    /// Gateways page through the sessions ended since their place, in this order
    /// (``SessionRevocations/recent(endedSince:)``).
    static let endedSessionsInOrder = Migration(
        version: 15, name: "ended_sessions_in_order",
        statements: ["CREATE INDEX ended_sessions_in_order ON ended_sessions (ended_at, family_id)"],
        buildsIndexesConcurrently: true)

    /// A rotation finds the other successors of the token it spends by this index, and so do
    /// the pruning job and the foreign key's `ON DELETE SET NULL` (``RefreshTokenStore``).
    static let refreshTokensByParent = Migration(
        version: 16, name: "refresh_tokens_by_parent",
        statements: ["CREATE INDEX refresh_tokens_replaces ON refresh_tokens (replaces)"],
        buildsIndexesConcurrently: true)

    /// Sessions a password change spared, and when to end them: once their access tokens can
    /// have expired (``SessionRevocations/revokeAll(of:sparing:on:)``, ``AuthPruner``).
    static let sparedSessions = Migration(
        version: 17, name: "spared_sessions",
        statements: [
            """
            CREATE TABLE spared_sessions (
                family_id uuid PRIMARY KEY,
                user_id uuid NOT NULL,
                end_at timestamptz NOT NULL
            )
            """,
            "CREATE INDEX spared_sessions_end ON spared_sessions (end_at)",
        ])

    /// The client addresses each account logged in from lately: an account whose failed logins
    /// are over their limit still takes logins from them (``LoginThrottle``).
    static let knownLoginAddresses = Migration(
        version: 18, name: "known_login_addresses",
        statements: [
            """
            CREATE TABLE known_login_addresses (
                login_key text NOT NULL,
                address_key text NOT NULL,
                seen_at timestamptz NOT NULL,
                PRIMARY KEY (login_key, address_key)
            )
            """,
            "CREATE INDEX known_login_addresses_seen ON known_login_addresses (seen_at)",
        ])

    /// When the access token signed with each refresh token expires: an ended session's tokens
    /// are refused until the last of them has expired, whatever lifetime auth runs with when it
    /// ends (``SessionRevocations``). Null for tokens issued before it, which count as living
    /// the longest lifetime auth accepts (``SessionRevocations/lastAccessExpiry``).
    static let accessTokenExpiries = Migration(
        version: 19, name: "access_token_expiries",
        statements: ["ALTER TABLE refresh_tokens ADD COLUMN access_expires_at timestamptz"])
}
