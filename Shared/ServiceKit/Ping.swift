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

extension RPCClient {
    /// Pings `service` over the broker (`command`'s nonce comes back in the reply): proves the
    /// service consumes its queue and answers, within `timeout`.
    @discardableResult
    public func ping(_ service: ServiceName, _ command: PingCommand = PingCommand(), timeout: Duration) async throws
        -> PingReply
    {
        try await self.call(.ping(service), to: service, payload: command, replyAs: PingReply.self, timeout: timeout)
    }
}
