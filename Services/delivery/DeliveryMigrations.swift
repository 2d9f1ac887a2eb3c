import MessengerPostgres
import MessengerServiceKit

/// The `delivery` schema's migrations, oldest first. Never edit a shipped one; append.
enum DeliveryMigrations {
    static let all: [Migration] = [.inbox]
}
