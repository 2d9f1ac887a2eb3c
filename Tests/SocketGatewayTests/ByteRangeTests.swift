import Testing

@testable import SocketGateway

@Suite("Range requests on media files")
struct ByteRangeTests {
    @Test(
        "one range of bytes is served as that part",
        arguments: [
            ("bytes=0-1", 0...1), ("bytes=2-", 2...9), ("bytes=-3", 7...9), ("bytes=5-100", 5...9),
            ("bytes=-100", 0...9), ("BYTES=0-0", 0...0), (" bytes=9-9 ", 9...9), ("bytes= 3-4", 3...4),
        ])
    func part(header: String, bytes: ClosedRange<Int>) {
        #expect(ByteRange(header: header, size: 10) == .part(bytes))
    }

    @Test(
        "a range with no byte of the file is unsatisfiable",
        arguments: ["bytes=10-", "bytes=10-20", "bytes=-0", "bytes=999999999999999999-"])
    func unsatisfiable(header: String) {
        #expect(ByteRange(header: header, size: 10) == .unsatisfiable)
    }

    @Test(
        "a header this server does not take is ignored: the whole file",
        arguments: [
            nil, "", "bytes=", "bytes=-", "bytes=4-2", "bytes=0-1,4-5", "items=0-1", "bytes=a-b", "bytes=+1-2",
            "bytes=0-1-2", "bytes=1234567890123456789-", "bytes=--1",
        ])
    func whole(header: String?) {
        #expect(ByteRange(header: header, size: 10) == .whole)
    }
}
