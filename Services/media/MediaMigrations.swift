import MessengerPostgres
import MessengerServiceKit

/// The `media` schema's migrations, oldest first. Never edit a shipped one; append.
enum MediaMigrations {
    static let all: [Migration] = [.inbox]
}
