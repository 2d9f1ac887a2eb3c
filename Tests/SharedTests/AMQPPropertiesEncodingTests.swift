import MessengerAMQP
import Testing

@Suite("What AMQP properties librabbitmq-c can encode")
struct AMQPPropertiesEncodingTests {
    @Test("short strings hold 255 bytes at most, counted in UTF-8")
    func shortStrings() {
        #expect(AMQPProperties(messageID: String(repeating: "a", count: 255)).encodingProblem(frameMax: 131_072) == nil)
        #expect(AMQPProperties(messageID: String(repeating: "a", count: 256)).encodingProblem(frameMax: 131_072) != nil)
        #expect(AMQPProperties(type: String(repeating: "é", count: 128)).encodingProblem(frameMax: 131_072) != nil)
        #expect(AMQPProperties(headers: [String(repeating: "k", count: 256): 1]).encodingProblem(frameMax: 131_072) != nil)
        #expect(
            AMQPProperties(headers: ["t": .table([String(repeating: "k", count: 256): 1])]).encodingProblem(frameMax: 131_072)
                != nil)
    }

    @Test("the properties fit in one frame")
    func frameSize() {
        let fits = AMQPProperties(headers: ["b": .bytes(Array(repeating: 0, count: 100_000))])
        #expect(fits.encodingProblem(frameMax: 131_072) == nil)
        #expect(fits.encodingProblem(frameMax: 65_536) != nil)
        let array = AMQPProperties(headers: ["a": .array(Array(repeating: .int(1), count: 20_000))])
        #expect(array.encodingProblem(frameMax: 131_072) != nil)
    }
}
