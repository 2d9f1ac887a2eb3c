import MessengerPostgres
import Testing

@testable import DeliveryService
@testable import MediaService
@testable import MessagingService

/// During a rolling upgrade the replicas of the version before keep running against the new
/// schema, and a rollback runs that version against it: a migration may add, but removes or
/// renames only what no earlier release still uses (docs/foundation.md, "Upgrading a running
/// system"). These are the migrations shipped before that rule; a new one that contracts the
/// schema fails here, to be moved to a later release than the code that stopped using it.
@Suite("Migrations that contract the schema")
struct SchemaContractionTests {
    @Test("the only migrations that remove, rename or narrow are the ones shipped before the rule")
    func contractingMigrations() {
        #expect(MessagingMigrations.all.filter(\.contractsTheSchema).map(\.version) == [7])
        #expect(DeliveryMigrations.all.filter(\.contractsTheSchema).map(\.version) == [3, 4])
        #expect(MediaMigrations.all.filter(\.contractsTheSchema).map(\.version) == [4])
    }

    @Test("a statement that removes, renames or narrows is told from one that adds")
    func contractingStatements() {
        func contracts(_ statement: String) -> Bool {
            Migration(version: 1, name: "m", statements: [statement]).contractsTheSchema
        }
        #expect(contracts("ALTER TABLE t DROP COLUMN c"))
        #expect(contracts("drop table t"))
        #expect(contracts("ALTER TABLE t RENAME COLUMN a TO b"))
        #expect(contracts("ALTER TABLE t ALTER COLUMN c SET NOT NULL"))
        #expect(contracts("ALTER TABLE t ALTER COLUMN c TYPE bigint"))
        #expect(!contracts("ALTER TABLE t ADD COLUMN c text"))
        #expect(!contracts("CREATE TABLE t (id bigint PRIMARY KEY, type text NOT NULL)"))
        #expect(!contracts("CREATE INDEX t_dropped ON t (dropped_at)"))
        #expect(!contracts("UPDATE t SET c = 1 WHERE c IS NULL"))
    }
}
