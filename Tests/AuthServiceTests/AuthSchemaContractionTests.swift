import MessengerPostgres
import Testing

@testable import AuthService

/// Auth's part of `SchemaContractionTests` (IntegrationTests): a migration may remove, rename or
/// narrow only what no earlier release still uses; the outbox's change to deleting what it
/// published (version 7) was shipped before that rule.
@Suite("Auth migrations that contract the schema")
struct AuthSchemaContractionTests {
    @Test("the only auth migration that removes, renames or narrows is the one shipped before the rule")
    func contractingMigrations() {
        #expect(AuthMigrations.all.filter(\.contractsTheSchema).map(\.version) == [7])
    }
}
