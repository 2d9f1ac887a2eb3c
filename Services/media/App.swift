import MessengerServiceKit

/// The `media` service: Attachments and their storage.
@main
struct MediaApp {
    static func main() async {
        await ServiceMain.run(name: "media") { context in
            try buildServices(context: context)
        }
    }
}
