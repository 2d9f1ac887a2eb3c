import Foundation
import Testing

@testable import SocketGateway

@Suite("Multipart forms")
struct MultipartFormTests {
    private static func form(_ text: String) -> MultipartForm? {
        MultipartForm(body: Data(text.utf8), boundary: "xyz")
    }

    @Test("a form's parts: names, file names, types and bytes (CRLF and dashes inside a body stay)")
    func parts() throws {
        let form = try #require(
            Self.form(
                "--xyz\r\nContent-Disposition: form-data; name=\"caption\"\r\n\r\nhello\r\n"
                    + "--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".png\"\r\n"
                    + "Content-Type: image/png\r\n\r\n\u{1}\r\n--xy\r\n-\r\n--xyz--\r\n"))
        #expect(form.parts.count == 2)
        #expect(form.parts[0].name == "caption" && form.parts[0].fileName == nil)
        #expect(form.parts[0].body == Data("hello".utf8))
        #expect(form.parts[1].name == "file" && form.parts[1].fileName == "a \"b\".png")
        #expect(form.parts[1].contentType == "image/png")
        #expect(form.parts[1].body == Data("\u{1}\r\n--xy\r\n-".utf8))
    }

    @Test("a preamble before the first delimiter is skipped (RFC 2046, 5.1.1)")
    func preamble() throws {
        let form = try #require(
            Self.form(
                "This is a preamble.\r\n--xyz\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nbytes\r\n--xyz--\r\n"))
        #expect(form.parts.count == 1)
        #expect(form.parts[0].name == "file" && form.parts[0].fileName == nil)
        #expect(form.parts[0].body == Data("bytes".utf8))
    }

    @Test(
        "malformed forms are refused",
        arguments: [
            "", "preamble--xyz\r\n", "--xyz", "--xyzjunk", "--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end",
            "--xyz\r\nno blank line", "--xyz\r\nContent-Type: text/plain\r\n\r\nno name\r\n--xyz--",
        ])
    func malformed(_ text: String) {
        #expect(Self.form(text) == nil)
    }

    @Test("a form of more parts than the bound, or of a part with oversized headers, is refused")
    func bounds() {
        let part = "--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n"
        #expect(Self.form(String(repeating: part, count: MultipartForm.maximumParts) + "--xyz--") != nil)
        #expect(Self.form(String(repeating: part, count: MultipartForm.maximumParts + 1) + "--xyz--") == nil)
        let header = "X-Padding: " + String(repeating: "p", count: MultipartForm.maximumHeaderBytes) + "\r\n"
        #expect(Self.form("--xyz\r\n" + header + "Content-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--xyz--") == nil)
    }

    @Test("a large body of tiny parts is refused at once, not searched again for every part")
    func largeBodyOfTinyParts() {
        // 25 MB of parts: with a search that copies the body at each part this took minutes.
        let part = Data("--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n".utf8)
        var body = Data()
        for _ in 0..<(25_000_000 / part.count) { body.append(part) }
        body.append(Data("--xyz--".utf8))
        #expect(MultipartForm(body: body, boundary: "xyz") == nil)
        // And one big file after many short fields, in bounds, is found linearly.
        var big = Data()
        for _ in 0..<(MultipartForm.maximumParts - 1) { big.append(part) }
        big.append(Data("--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n".utf8))
        big.append(Data(repeating: UInt8(ascii: "-"), count: 20_000_000))
        big.append(Data("\r\n--xyz--".utf8))
        #expect(MultipartForm(body: big, boundary: "xyz")?.parts.last?.body.count == 20_000_000)
    }

    @Test("find: the first match at or after a start, in a slice too")
    func find() {
        let data = Data("abcabcab".utf8)
        #expect(MultipartForm.find(Array("abc".utf8), in: data, from: 0) == 0..<3)
        #expect(MultipartForm.find(Array("abc".utf8), in: data, from: 1) == 3..<6)
        #expect(MultipartForm.find(Array("abc".utf8), in: data, from: 4) == nil)
        #expect(MultipartForm.find(Array("cab".utf8), in: data, from: 0) == 2..<5)
        let slice = data[2...]
        #expect(MultipartForm.find(Array("ab".utf8), in: slice, from: 2) == 3..<5)
        #expect(MultipartForm.find(Array("ab".utf8), in: slice, from: 7) == nil)
    }

    @Test("a disposition's parameters: quotes keep a `;`, escaped quotes, unquoted values, keys in any case")
    func dispositionParameters() {
        #expect(
            MultipartForm.parameters(of: #"form-data; name="file"; filename="report; final.txt""#)
                == ["name": "file", "filename": "report; final.txt"])
        #expect(
            MultipartForm.parameters(of: #"form-data;NAME=a ; FileName = "x"y.png""#) == ["name": "a", "filename": #"x"y.png"#])
        #expect(MultipartForm.parameters(of: #"form-data; name="a"; name="b"; junk"#) == ["name": "a"])
        let form = MultipartForm(
            body: Data(
                "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a%22;x=%22.txt\"\r\n\r\nz\r\n--b--".utf8),
            boundary: "b")
        #expect(form?.parts.first?.fileName == #"a";x=".txt"#)
    }
}
