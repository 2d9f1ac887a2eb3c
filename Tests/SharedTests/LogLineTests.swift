import Testing

@testable import MessengerServiceKit

@Suite("Log lines")
struct LogLineTests {
    @Test("a metadata value is quoted only when it must be, and escaped inside the quotes")
    func logfmtValues() {
        #expect(MessengerLogHandler.logfmtValue("socket-gateway-6f7e1605") == "socket-gateway-6f7e1605")
        #expect(MessengerLogHandler.logfmtValue("127.0.0.1:5673") == "127.0.0.1:5673")
        #expect(MessengerLogHandler.logfmtValue("") == #""""#)
        #expect(MessengerLogHandler.logfmtValue("connection refused") == #""connection refused""#)
        #expect(MessengerLogHandler.logfmtValue(#"say "hi""#) == #""say \"hi\"""#)
        #expect(MessengerLogHandler.logfmtValue("a=b") == #""a=b""#)
        #expect(MessengerLogHandler.logfmtValue(#"C:\x"#) == #""C:\\x""#)
        #expect(MessengerLogHandler.logfmtValue("two\nlines\u{1}") == #""two\nlines\u{1}""#)
        #expect(MessengerLogHandler.logfmtValue("émoji 😀") == "\"émoji 😀\"")
    }

    @Test("a message stays on one line; quotes in it are left as they are")
    func messages() {
        #expect(MessengerLogHandler.oneLine(#"closing a "slow" client"#) == #"closing a "slow" client"#)
        #expect(MessengerLogHandler.oneLine("ERROR: x\nDETAIL: y\r\t") == #"ERROR: x\nDETAIL: y\r\t"#)
    }
}
