import MessengerServiceKit
import ServiceLifecycle

/// Wires the `delivery` service: its schema, migrations and RPC handlers.
func buildServices(context: ServiceContext) throws -> [any Service] {
    let backend = try BackendService(
        service: .delivery, schema: "delivery", adminPortVariable: "DELIVERY_ADMIN_PORT", defaultAdminPort: 9104,
        migrations: DeliveryMigrations.all, context: context)
    return backend.services()
}
