import MessengerServiceKit

/// The `delivery` service: The per-user event log and delivery tracking.
@main
struct DeliveryApp {
    static func main() async {
        await ServiceMain.run(name: "delivery") { context in
            try buildServices(context: context)
        }
    }
}
