import CRabbitMQ
import Foundation
import MessengerAMQP
import ThreadedIO

/// The ceiling: librabbitmq-c driven by a plain loop on one thread, persistent messages to a
/// durable queue, publisher confirms with a fixed window. No Swift concurrency, no queues, no
/// copies beyond what the library does. (The benchmark is the one place outside Shared that
/// calls the C module, on purpose.)
public struct RawRabbitMQPublisher: Sendable {
    public let configuration: AMQPConfiguration

    public enum Failure: Error { case step(String) }

    public init(configuration: AMQPConfiguration) {
        self.configuration = configuration
    }

    /// ``publish(count:body:queue:window:)`` on a thread of its own: its C calls block for
    /// seconds, and an async caller may be on an event loop (the load tool runs Swift
    /// concurrency on NIO's loops).
    public func publishOnOwnThread(count: Int, body: [UInt8], queue: String, window: Int) async throws -> Duration {
        let elapsed = Promise<Duration>()
        let thread = Thread {
            do {
                elapsed.succeed(try self.publish(count: count, body: body, queue: queue, window: window))
            } catch {
                elapsed.fail(error)
            }
        }
        thread.name = "raw-publisher"
        thread.start()
        return try await elapsed.value()
    }

    /// Publishes `count` messages of `body` and returns once every one is confirmed; deletes
    /// the queue afterwards. Blocks its thread throughout.
    public func publish(count: Int, body: [UInt8], queue: String, window: Int) throws -> Duration {
        guard let connection = amqp_new_connection(), let socket = amqp_tcp_socket_new(connection) else {
            throw Failure.step("allocate")
        }
        defer { amqp_destroy_connection(connection) }
        guard amqp_socket_open(socket, self.configuration.host, Int32(self.configuration.port)) == 0 else {
            throw Failure.step("connect")
        }
        var properties = amqp_empty_table
        guard
            messenger_amqp_login_plain(
                connection, self.configuration.virtualHost, 0, 131_072, 0, &properties, self.configuration.user,
                self.configuration.password
            ).reply_type == AMQP_RESPONSE_NORMAL
        else { throw Failure.step("login") }
        amqp_channel_open(connection, 1)
        amqp_confirm_select(connection, 1)
        guard amqp_get_rpc_reply(connection).reply_type == AMQP_RESPONSE_NORMAL else { throw Failure.step("confirm.select") }

        var basic = amqp_basic_properties_t()
        basic._flags = UInt32(AMQP_BASIC_DELIVERY_MODE_FLAG)
        basic.delivery_mode = 2
        var acked = [Bool](repeating: false, count: count + 1)
        var watermark: UInt64 = 0
        var confirmed = 0
        var frame = amqp_frame_t()

        func readConfirm() throws {
            guard amqp_simple_wait_frame(connection, &frame) == 0 else { throw Failure.step("wait frame") }
            guard frame.frame_type == UInt8(AMQP_FRAME_METHOD), frame.payload.method.id == 0x003C_0050 else { return }
            let ack = frame.payload.method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            let tag = ack.delivery_tag
            if ack.multiple != 0 {
                if tag > watermark {
                    for index in Int(watermark + 1)...Int(tag) where !acked[index] {
                        acked[index] = true
                        confirmed += 1
                    }
                    watermark = tag
                }
            } else if !acked[Int(tag)] {
                acked[Int(tag)] = true
                confirmed += 1
            }
        }

        let exchange = amqp_bytes_t(len: 0, bytes: nil)
        let started = ContinuousClock.now
        try queue.withCString { queueName in
            let routingKey = amqp_cstring_bytes(queueName)
            try body.withUnsafeBytes { raw in
                let payload = amqp_bytes_t(len: raw.count, bytes: UnsafeMutableRawPointer(mutating: raw.baseAddress))
                for published in 1...count {
                    guard amqp_basic_publish(connection, 1, exchange, routingKey, 0, 0, &basic, payload) == 0 else {
                        throw Failure.step("publish")
                    }
                    while published - confirmed >= window { try readConfirm() }
                }
                while confirmed < count { try readConfirm() }
            }
        }
        let elapsed = ContinuousClock.now - started
        // The queue goes now, not when it expires a minute later: dropping its messages then
        // would load the broker and the disk in the middle of the next scenario.
        _ = queue.withCString { amqp_queue_delete(connection, 1, amqp_cstring_bytes($0), 0, 0) }
        _ = amqp_channel_close(connection, 1, AMQP_REPLY_SUCCESS)
        _ = amqp_connection_close(connection, AMQP_REPLY_SUCCESS)
        return elapsed
    }
}
