import MessengerServiceKit
import ServiceLifecycle

/// Wires the `auth` service: its schema, migrations and RPC handlers.
func buildServices(context: ServiceContext) throws -> [any Service] {
    let backend = try BackendService(
        service: .auth, schema: "auth", adminPortVariable: "AUTH_ADMIN_PORT", defaultAdminPort: 9101,
        migrations: AuthMigrations.all, context: context)
    return backend.services()
}
