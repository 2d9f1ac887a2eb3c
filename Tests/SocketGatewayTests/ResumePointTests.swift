import SocketIOProtocol
import Testing

@testable import SocketGateway

@Suite("CONNECT auth: lastSeq")
struct ResumePointTests {
    @Test("absent or null is 0; a whole number, 0 or more, is taken (past Int64: its largest)")
    func taken() throws {
        #expect(try ResumePoint.lastSeq(in: nil).get() == 0)
        #expect(try ResumePoint.lastSeq(in: .object(["token": .string("t")])).get() == 0)
        #expect(try ResumePoint.lastSeq(in: .object(["lastSeq": .null])).get() == 0)
        #expect(try ResumePoint.lastSeq(in: .object(["lastSeq": .number(0)])).get() == 0)
        #expect(try ResumePoint.lastSeq(in: .object(["lastSeq": .number(41)])).get() == 41)
        #expect(try ResumePoint.lastSeq(in: .object(["lastSeq": .number(1e300)])).get() == .max)
    }

    @Test("anything else refuses the CONNECT with invalid_argument naming lastSeq")
    func refused() {
        for value: JSONValue in [.string("3"), .number(-1), .number(1.5), .number(.nan), .bool(true), .array([]), .object([:])] {
            guard case .failure(let refusal) = ResumePoint.lastSeq(in: .object(["lastSeq": value])) else {
                Issue.record("\(value) was taken")
                continue
            }
            #expect(refusal.message == "invalid_argument")
            #expect(refusal.data?["message"]?.stringValue?.hasPrefix("lastSeq ") == true)
        }
    }
}
