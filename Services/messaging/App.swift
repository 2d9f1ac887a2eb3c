import MessengerServiceKit

/// The `messaging` service: Threads, messages and the outbox of domain events.
@main
struct MessagingApp {
    static func main() async {
        await ServiceMain.run(name: "messaging") { context in
            try buildServices(context: context)
        }
    }
}
