import MessengerPostgres
import MessengerServiceKit

/// The `messaging` schema's migrations, oldest first. Never edit a shipped one; append.
enum MessagingMigrations {
    static let all: [Migration] = [.inbox]
}
