import MessengerServiceKit

/// The socket gateway: the only public edge (REST and Socket.IO), bridging clients to the
/// services over RabbitMQ and fanning events out to sockets through Redis.
@main
struct GatewayApp {
    static func main() async {
        await ServiceMain.run(name: "socket-gateway") { context in
            try buildServices(context: context)
        }
    }
}
