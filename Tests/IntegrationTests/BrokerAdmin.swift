import CRabbitMQ
import MessengerAMQP
import TestSupport

/// What an operator does to the broker behind the client's back, through a connection of its
/// own straight on librabbitmq-c (the client under test has no such operations).
enum BrokerAdmin {
    /// Deletes `queue` whatever it holds and whoever consumes it.
    static func deleteQueue(_ queue: String) throws {
        try Self.withChannel { connection in
            queue.withCString { _ = amqp_queue_delete(connection, 1, amqp_cstring_bytes($0), 0, 0) }
            guard amqp_get_rpc_reply(connection).reply_type == AMQP_RESPONSE_NORMAL else {
                throw TestFailure("queue.delete \(queue) failed")
            }
        }
    }

    /// How many consumers `queue` has (a passive `queue.declare`).
    static func consumerCount(_ queue: String) throws -> Int {
        try Self.withChannel { connection in
            let ok = queue.withCString {
                amqp_queue_declare(connection, 1, amqp_cstring_bytes($0), 1, 0, 0, 0, amqp_empty_table)
            }
            guard let ok, amqp_get_rpc_reply(connection).reply_type == AMQP_RESPONSE_NORMAL else {
                throw TestFailure("queue.declare (passive) \(queue) failed")
            }
            return Int(ok.pointee.consumer_count)
        }
    }

    private static func withChannel<T>(_ body: (amqp_connection_state_t) throws -> T) throws -> T {
        let configuration = try TestEnvironment.amqpConfiguration(name: "test-admin")
        guard let connection = amqp_new_connection() else { throw TestFailure("amqp_new_connection failed") }
        defer { amqp_destroy_connection(connection) }
        guard let socket = amqp_tcp_socket_new(connection),
            amqp_socket_open(socket, configuration.host, Int32(configuration.port)) == AMQP_STATUS_OK.rawValue
        else { throw TestFailure("cannot connect to \(configuration.host):\(configuration.port)") }
        var properties = amqp_empty_table
        let login = messenger_amqp_login_plain(
            connection, configuration.virtualHost, 0, Int32(configuration.frameMax), 0, &properties, configuration.user,
            configuration.password)
        guard login.reply_type == AMQP_RESPONSE_NORMAL else { throw TestFailure("login failed") }
        amqp_channel_open(connection, 1)
        guard amqp_get_rpc_reply(connection).reply_type == AMQP_RESPONSE_NORMAL else {
            throw TestFailure("channel.open failed")
        }
        let result = try body(connection)
        _ = amqp_channel_close(connection, 1, AMQP_REPLY_SUCCESS)
        _ = amqp_connection_close(connection, AMQP_REPLY_SUCCESS)
        return result
    }
}
