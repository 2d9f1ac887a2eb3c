/// An error from the AMQP layer, with a stable code and the broker's or library's text.
public struct AMQPError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Base: String { case connection, protocolError, nacked, unroutable, shutdown, timeout, invalidURI }
        fileprivate var base: Base
        /// The socket, login or handshake failed, or the connection was lost.
        public static let connection = Code(base: .connection)
        /// The broker closed a channel or the connection because of a request of ours.
        public static let protocolError = Code(base: .protocolError)
        /// The broker refused to take responsibility for a published message (`basic.nack`).
        public static let nacked = Code(base: .nacked)
        /// A mandatory message matched no queue (`basic.return`).
        public static let unroutable = Code(base: .unroutable)
        /// The connection is shutting down; the operation was not done.
        public static let shutdown = Code(base: .shutdown)
        /// No answer in time (an RPC reply, for example).
        public static let timeout = Code(base: .timeout)
        /// `RABBITMQ_URI` could not be parsed.
        public static let invalidURI = Code(base: .invalidURI)
        public var description: String { self.base.rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "AMQP \(self.code): \(self.message)" }

    /// Whether the broker was away or did not take a message: the work may be done again once
    /// it is back (`unavailable` to a caller). Refusals of a request (``Code/protocolError``,
    /// ``Code/unroutable``) and a bad URI are not.
    public var isBrokerUnavailable: Bool {
        [.connection, .nacked, .shutdown, .timeout].contains(self.code)
    }
}
