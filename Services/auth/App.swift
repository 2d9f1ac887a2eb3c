import MessengerServiceKit

/// The `auth` service: Users, passwords and tokens.
@main
struct AuthApp {
    static func main() async {
        await ServiceMain.run(name: "auth") { context in
            try buildServices(context: context)
        }
    }
}
