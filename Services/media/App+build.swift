import MessengerServiceKit
import ServiceLifecycle

/// Wires the `media` service: its schema, migrations and RPC handlers.
func buildServices(context: ServiceContext) throws -> [any Service] {
    let backend = try BackendService(
        service: .media, schema: "media", adminPortVariable: "MEDIA_ADMIN_PORT", defaultAdminPort: 9103,
        migrations: MediaMigrations.all, context: context)
    return backend.services()
}
