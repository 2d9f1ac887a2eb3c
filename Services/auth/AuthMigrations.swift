import MessengerPostgres
import MessengerServiceKit

/// The `auth` schema's migrations, oldest first. Never edit a shipped one; append.
enum AuthMigrations {
    static let all: [Migration] = [.inbox]
}
