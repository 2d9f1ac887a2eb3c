import Testing

@testable import MessengerLoad

@Suite("What a storm socket reads from an event")
struct StormSocketTests {
    @Test("the event's own seq, not the message's, and the storm message's index, keys in any order")
    func readsTheEventSeqAndTheIndex() {
        let created =
            #"42["message_created",{"eventId":"e","data":{"message":{"seq":7,"body":"storm 1234","id":"m"}},"seq":42,"type":"MESSAGE_CREATED"}]"#
        #expect(StormSocket.read(created) == (seq: 42, stormIndex: 1234))
        let seqFirst = #"42["message_created",{"seq":9,"data":{"message":{"body":"storm 5","seq":3}}}]"#
        #expect(StormSocket.read(seqFirst) == (seq: 9, stormIndex: 5))
    }

    @Test("markers inside strings, escaped quotes, other bodies and huge numbers are not read")
    func ignoresLookAlikes() {
        let inBody =
            #"42["message_created",{"data":{"message":{"body":"say \"seq\":5 and \"body\":\"storm 9","seq":1}},"seq":2}]"#
        #expect(StormSocket.read(inBody) == (seq: 2, stormIndex: nil))
        let other = #"42["message_created",{"data":{"message":{"body":"hello 3"}},"seq":4}]"#
        #expect(StormSocket.read(other) == (seq: 4, stormIndex: nil))
        let huge = #"42["typing",{"seq":99999999999999999999999}]"#
        #expect(StormSocket.read(huge) == (seq: nil, stormIndex: nil))
        #expect(StormSocket.read(#"42["typing",{"threadId":"t"}]"#) == (seq: nil, stormIndex: nil))
    }
}
