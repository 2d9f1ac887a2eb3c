import Foundation
import Logging
import MessengerContracts
import Testing

@testable import MessengerAMQP

/// Where an RPC request's body is decoded (``RPCRouter/decode(_:from:)``).
@Suite("RPC request decoding")
struct RPCDecodingTests {
    /// A payload that notes the name of the thread decoding it.
    struct ThreadNoting: Codable, Sendable {
        var padding: String
        var decodedOn = ""

        init(padding: String) { self.padding = padding }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            self.padding = try container.decode(String.self, forKey: .padding)
            self.decodedOn = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "unknown"
        }
    }

    @Test("a big request (an upload) is decoded on NIO's thread pool, a small one where it arrives")
    func bigBodiesLeaveTheCooperativePool() async throws {
        let big = try MessengerJSON.encode(
            Envelope(
                type: "test.big.v1", data: ThreadNoting(padding: String(repeating: "x", count: RPCRouter.offloadedDecodingSize))))
        let small = try MessengerJSON.encode(Envelope(type: "test.small.v1", data: ThreadNoting(padding: "x")))
        let decodedBig = try await RPCRouter.decode(Envelope<ThreadNoting>.self, from: big)
        let decodedSmall = try await RPCRouter.decode(Envelope<ThreadNoting>.self, from: small)
        #expect(decodedBig.data.decodedOn.contains("TP-#"), "decoded on \(decodedBig.data.decodedOn)")
        #expect(!decodedSmall.data.decodedOn.contains("TP-#"), "decoded on \(decodedSmall.data.decodedOn)")
        #expect(decodedBig.data.padding.count == RPCRouter.offloadedDecodingSize)
    }

    @Test("a big request that does not decode is answered invalid_argument, as a small one is")
    func bigUndecodableBody() async throws {
        var router = RPCRouter()
        router.on("test.big.v1", ThreadNoting.self) { payload, _ in payload.padding.count }
        let handler = try #require(router.handlers["test.big.v1"])
        var body = try MessengerJSON.encode(
            Envelope(
                type: "test.big.v1", data: ThreadNoting(padding: String(repeating: "x", count: RPCRouter.offloadedDecodingSize))))
        body.removeLast(2)
        let answered = await handler(body, nil, false, Logger(label: "test"))
        #expect(answered.outcome == "invalid_argument")
    }
}
