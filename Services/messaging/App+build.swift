import MessengerServiceKit
import ServiceLifecycle

/// Wires the `messaging` service: its schema, migrations and RPC handlers.
func buildServices(context: ServiceContext) throws -> [any Service] {
    let backend = try BackendService(
        service: .messaging, schema: "messaging", adminPortVariable: "MESSAGING_ADMIN_PORT", defaultAdminPort: 9102,
        migrations: MessagingMigrations.all, context: context)
    return backend.services()
}
