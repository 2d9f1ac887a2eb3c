import Foundation
import SocketIOProtocol
import Testing

@testable import SocketGateway
@testable import SocketIOServer

@Suite("Pushes reach this gateway's sockets as their text came")
struct PushSplicingTests {
    /// A push as delivery writes it (keys sorted, no spaces).
    static let push = #"""
        {"args":[{"data":{"message":{"body":"hé \"quoted\" \u2028","id":"m1","seq":3}},"eventId":"e1","occurredAt":"2026-12-03T18:00:00.000Z","seq":42,"type":"MESSAGE_CREATED"}],"event":"message_created","redelivery":false,"rooms":["user:u1"]}
        """#

    @Test("a durable push's packet is its arguments' text spliced in, the same as writing them again")
    func durablePush() throws {
        let push = try #require(PushConsumer.decode(Data(Self.push.utf8)))
        #expect(push.argumentsJSON?.hasPrefix(#"[{"data":"#) == true)
        let spliced = try #require(
            DurableEvent(name: push.event, arguments: push.arguments, argumentsJSON: push.argumentsJSON, redelivery: false))
        let written = try #require(DurableEvent(name: push.event, arguments: push.arguments, redelivery: false))
        #expect(spliced.seq == 42)
        #expect(spliced.packet.messages == written.packet.messages)
        guard case .text(let text)? = spliced.packet.messages.first else {
            Issue.record("no text message")
            return
        }
        #expect(text.hasPrefix(#"2["message_created",{"data":"#))
        // A client reads back what the push said.
        let packet = try #require(try SocketIODecoder(maximumAttachments: 0).receiveCopy(text: text))
        #expect(packet.data == .array([.string("message_created")] + push.arguments))
    }

    @Test(
        "arguments with spaces, none, or several are spliced as valid packets",
        arguments: [
            #"{"event":"e","rooms":["r"],"args": [ {"seq": 1} , 2 ] }"#,
            #"{"event":"e","rooms":["r"],"args":[ ]}"#,
            #"{"event":"e","rooms":["r"],"args":[]}"#,
            #"{"args":["a",null,true,[1,2.5]],"event":"e","rooms":["r"]}"#,
        ])
    func shapes(push: String) throws {
        let decoded = try #require(PushConsumer.decode(Data(push.utf8)))
        let json = try #require(decoded.argumentsJSON)
        for namespace in ["/", "/chat"] {
            let spliced = EncodedEvent(decoded.event, argumentsJSON: json, namespace: namespace)
            let written = EncodedEvent(decoded.event, decoded.arguments, namespace: namespace)
            guard case .text(let splicedText)? = spliced.messages.first, case .text(let writtenText)? = written.messages.first
            else {
                Issue.record("no text message")
                return
            }
            let a = try #require(try SocketIODecoder(maximumAttachments: 0).receiveCopy(text: splicedText))
            let b = try #require(try SocketIODecoder(maximumAttachments: 0).receiveCopy(text: writtenText))
            #expect(a == b)
        }
    }

    @Test("a push without an args array has no text to splice")
    func noArguments() throws {
        #expect(try #require(PushConsumer.decode(Data(#"{"event":"e","rooms":["r"]}"#.utf8))).argumentsJSON == nil)
        #expect(try #require(PushConsumer.decode(Data(#"{"event":"e","rooms":["r"],"args":{"a":1}}"#.utf8))).argumentsJSON == nil)
    }

    @Test("a push must name its rooms, each a string: no rooms would reach every socket")
    func roomsNamed() {
        for rooms in ["[]", "[123]", #"["r",1]"#, #""r""#] {
            #expect(PushConsumer.decode(Data(#"{"event":"e","rooms":\#(rooms),"args":[]}"#.utf8)) == nil, "\(rooms)")
        }
    }
}

extension SocketIODecoder {
    /// Decodes one text packet with a fresh copy of the decoder.
    fileprivate func receiveCopy(text: String) throws -> SocketIOPacket? {
        var decoder = self
        return try decoder.receive(text: text)
    }
}
