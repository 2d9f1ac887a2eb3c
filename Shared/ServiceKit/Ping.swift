import MessengerAMQP
import MessengerContracts

extension RPCRouter {
    /// Answers `<service>.ping.v1` with the nonce, the service name and this instance's id.
    public mutating func addPing(service: ServiceName, instanceID: String) {
        self.on(.ping(service), PingCommand.self) { command, _ in
            PingReply(nonce: command.nonce, service: service.rawValue, instance: instanceID)
        }
    }
}
