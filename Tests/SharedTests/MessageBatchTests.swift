import Foundation
import Testing
import ThreadedIO

@testable import MessengerAMQP

@Suite("RPC batches")
struct MessageBatchTests {
    static func request(_ id: String, to service: String = "messaging", expiration: String = "5000", body: String = "{}")
        -> PendingPublish
    {
        PendingPublish(
            message: AMQPMessage(
                exchange: "messenger.rpc", routingKey: service, body: Data(body.utf8),
                properties: AMQPProperties(
                    correlationID: id, replyTo: "rpc.reply.a", type: "messaging.create_message.v1", expiration: expiration,
                    persistent: false),
                mandatory: true
            ).batched(as: MessageBatch.requestType),
            promise: Promise<Void>())
    }

    static func event(_ name: String) -> PendingPublish {
        PendingPublish(
            message: AMQPMessage(exchange: "messenger.events", routingKey: name, body: Data(name.utf8)), promise: Promise<Void>())
    }

    @Test("a batch's body reads back as it was written, bodies byte for byte")
    func roundTrip() throws {
        let batch = MessageBatch(items: [
            .init(correlationID: "a1", type: "messaging.create_message.v1", body: Data(#"{"ok":true}"#.utf8)),
            .init(correlationID: "", type: "x", body: Data()),
            .init(correlationID: "é", type: "t", body: Data((0...255).map { UInt8($0) })),
        ])
        #expect(try MessageBatch(decoding: batch.encoded()) == batch)
    }

    @Test("a malformed body is refused, never half read")
    func malformed() {
        let good = MessageBatch(items: [.init(correlationID: "a", type: "t", body: Data("body".utf8))]).encoded()
        var badFormat = good
        badFormat[0] = 2
        let bodies = [
            Data(), Data([1]), badFormat, good.dropLast(), good + Data([0]), Data([1, 0, 2, 0xFF, 0xFE, 0, 0, 0, 0, 0, 0]),
        ]
        for body in bodies {
            #expect(throws: AMQPError.self) { try MessageBatch(decoding: Data(body)) }
        }
    }

    @Test("requests of one round to the same destination become one message, in the first one's place")
    func coalesces() throws {
        let publishes = [
            Self.event("e1"), Self.request("r1"), Self.event("e2"), Self.request("r2"), Self.request("a1", to: "auth"),
            Self.request("r3"),
        ]
        let coalesced = MessageBatch.coalesce(publishes)
        #expect(coalesced.map(\.message.routingKey) == ["e1", "messaging", "e2", "auth"])
        let merged = coalesced[1]
        #expect(merged.message.properties.type == MessageBatch.requestType)
        #expect(merged.message.properties.contentType == MessageBatch.contentType)
        #expect(merged.message.properties.replyTo == "rpc.reply.a")
        #expect(merged.message.properties.expiration == "5000")
        #expect(merged.message.properties.messageID != nil)
        #expect(merged.message.mandatory)
        #expect(!merged.message.properties.persistent)
        #expect(merged.promises.count == 3)
        let items = try MessageBatch(decoding: merged.message.body).items
        #expect(items.map(\.correlationID) == ["r1", "r2", "r3"])
        #expect(items.allSatisfy { $0.type == "messaging.create_message.v1" })
        // A lone request stays a plain message.
        #expect(coalesced[3].message.properties.correlationID == "a1")
        #expect(coalesced[3].message.body == Data("{}".utf8))
    }

    @Test("different expirations, and messages without a batch type, are never merged")
    func keepsApart() {
        let coalesced = MessageBatch.coalesce([
            Self.request("r1"), Self.request("r2", expiration: "100"), Self.event("e"), Self.event("e"),
        ])
        #expect(coalesced.count == 4)
        #expect(coalesced.allSatisfy { $0.promises.count == 1 })
    }

    @Test("persistent pushes of one round travel together and stay persistent")
    func pushes() throws {
        func push(_ id: String) -> PendingPublish {
            PendingPublish(
                message: AMQPMessage(
                    exchange: "messenger.gateway", routingKey: "push", body: Data(id.utf8),
                    properties: AMQPProperties(messageID: id, type: "gateway.push.v1")
                ).batched(as: "gateway.push.batch.v1"),
                promise: Promise<Void>())
        }
        let coalesced = MessageBatch.coalesce([push("p1"), Self.event("e"), push("p2"), push("p3")])
        #expect(coalesced.count == 2)
        let merged = coalesced[0].message
        #expect(merged.properties.persistent)
        #expect(merged.properties.type == "gateway.push.batch.v1")
        #expect(merged.properties.replyTo == nil)
        #expect(!merged.mandatory)
        let items = try MessageBatch(decoding: merged.body).items
        #expect(items.map(\.body) == ["p1", "p2", "p3"].map { Data($0.utf8) })
        #expect(items.allSatisfy { $0.type == "gateway.push.v1" && $0.correlationID.isEmpty })
    }

    @Test("a batch holds at most 64 requests; the rest start the next")
    func itemLimit() throws {
        let coalesced = MessageBatch.coalesce((0..<130).map { Self.request("r\($0)") })
        #expect(coalesced.map(\.promises.count) == [64, 64, 2])
        #expect(try MessageBatch(decoding: coalesced[2].message.body).items.map(\.correlationID) == ["r128", "r129"])
    }

    @Test("the merged message completes every caller's promise")
    func promises() async throws {
        let publishes = [Self.request("r1"), Self.request("r2")]
        let merged = MessageBatch.coalesce(publishes)
        #expect(merged.count == 1)
        merged[0].fail(AMQPError(.unroutable, "no queue"))
        for pending in publishes {
            await #expect(throws: AMQPError.self) { try await pending.promises[0].value() }
        }
    }
}
