import Foundation
import MessengerContracts
import Testing

/// Files built byte by byte, as the sniffer sees them.
enum MediaBytes {
    static func be32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }
    static func be16(_ value: UInt16) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }
    static func le16(_ value: UInt16) -> [UInt8] { withUnsafeBytes(of: value.littleEndian, Array.init) }
    static func le24(_ value: UInt32) -> [UInt8] { Array(withUnsafeBytes(of: value.littleEndian, Array.init).prefix(3)) }
    static func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }

    static func png(width: UInt32, height: UInt32) -> [UInt8] {
        [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + be32(13) + ascii("IHDR") + be32(width) + be32(height)
            + [8, 2, 0, 0, 0] + [0, 0, 0, 0] + be32(0) + ascii("IEND") + [0xAE, 0x42, 0x60, 0x82]
    }

    static func gif(width: UInt16, height: UInt16) -> [UInt8] {
        ascii("GIF89a") + le16(width) + le16(height) + [0x80, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x3B]
    }

    /// SOI, an optional APP1 Exif block, SOF0 and EOI.
    static func jpeg(width: UInt16, height: UInt16, exif: [UInt8]? = nil) -> [UInt8] {
        let app0 = [0xFF, 0xE0] + be16(16) + ascii("JFIF") + [0, 1, 1, 0, 0, 1, 0, 1, 0, 0]
        let app1 = exif.map { [0xFF, 0xE1] + be16(UInt16($0.count + 2)) + $0 } ?? []
        let sof0 = [0xFF, 0xC0] + be16(17) + [8] + be16(height) + be16(width) + [3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]
        return [0xFF, 0xD8] + app0 + app1 + sof0 + [0xFF, 0xD9]
    }

    /// An Exif body whose IFD0 holds one SHORT Orientation entry (after a first other entry).
    static func exif(orientation: UInt16, bigEndian: Bool) -> [UInt8] {
        func u16(_ v: UInt16) -> [UInt8] { bigEndian ? be16(v) : le16(v) }
        func u32(_ v: UInt32) -> [UInt8] { bigEndian ? be32(v) : Array(be32(v).reversed()) }
        let header = bigEndian ? ascii("MM") + u16(42) : ascii("II") + u16(42)
        let software = u16(0x0131) + u16(2) + u32(4) + ascii("abc\0")
        let orientationEntry = u16(0x0112) + u16(3) + u32(1) + u16(orientation) + u16(0)
        return ascii("Exif") + [0, 0] + header + u32(8) + u16(2) + software + orientationEntry + u32(0)
    }

    static func webpVP8X(width: UInt32, height: UInt32) -> [UInt8] {
        ascii("RIFF") + [30, 0, 0, 0] + ascii("WEBPVP8X") + [10, 0, 0, 0] + [0, 0, 0, 0] + le24(width - 1)
            + le24(height - 1)
    }

    static func webpVP8(width: UInt16, height: UInt16) -> [UInt8] {
        ascii("RIFF") + [30, 0, 0, 0] + ascii("WEBPVP8 ") + [10, 0, 0, 0] + [0x50, 0x01, 0x00, 0x9D, 0x01, 0x2A]
            + le16(width) + le16(height)
    }

    /// An `ftyp` box with those brands, then a small `mdat` box.
    static func isoMedia(_ major: String, compatible: [String]) -> [UInt8] {
        let brands = compatible.flatMap(ascii)
        return be32(UInt32(16 + brands.count)) + ascii("ftyp") + ascii(major) + be32(0) + brands + be32(16)
            + ascii("mdat") + [UInt8](repeating: 0, count: 8)
    }

    /// MPEG-1 Layer III, 128 kbit/s, 44.1 kHz: 417 bytes a frame (418 padded).
    static let mp3Header: [UInt8] = [0xFF, 0xFB, 0x90, 0x00]

    static func mp3Frames(_ count: Int, header: [UInt8] = mp3Header) -> [UInt8] {
        (0..<count).flatMap { _ in header + [UInt8](repeating: 0x55, count: 417 - 4) }
    }
}

@Suite("MediaSniffer: type from the bytes")
struct MediaSnifferTypeTests {
    typealias B = MediaBytes

    @Test(
        "ISO media files are accepted by their major brand, or as MP4 by a compatible MP4 brand",
        arguments: [
            ("isom", ["isom", "iso2", "avc1", "mp41"], "video/mp4"), ("mp42", ["mp42", "isom"], "video/mp4"),
            ("iso5", ["iso5", "dash"], "video/mp4"), ("M4V ", ["M4V ", "M4A ", "mp42", "isom"], "video/mp4"),
            ("qt  ", ["qt  "], "video/quicktime"), ("M4A ", ["M4A ", "mp42", "isom"], "audio/mp4"),
            ("M4B ", ["M4B "], "audio/mp4"), ("3gp4", ["3gp4", "isom"], "video/3gpp"), ("3g2a", ["3g2a"], "video/3gpp2"),
            ("XAVC", ["XAVC", "mp42", "iso2"], "video/mp4"),
        ])
    func isoMediaAccepted(major: String, compatible: [String], contentType: String) {
        #expect(MediaSniffer.sniff(B.isoMedia(major, compatible: compatible))?.contentType == contentType)
    }

    @Test(
        "HEIC, AVIF, CR3 and unknown brands are refused",
        arguments: [
            ("heic", ["mif1", "heic"]), ("mif1", ["mif1", "heic"]), ("heix", ["mif1", "heix"]),
            ("avif", ["avif", "mif1", "miaf", "MA1B"]), ("crx ", ["crx ", "isom"]), ("isom", ["isom", "avif"]),
            ("mp42", ["mp42", "mif1"]), ("abcd", []), ("abcd", ["abcd", "efgh"]),
        ])
    func isoMediaRefused(major: String, compatible: [String]) {
        #expect(MediaSniffer.sniff(B.isoMedia(major, compatible: compatible)) == nil)
    }

    @Test("an ftyp box cut short or too small is refused")
    func isoMediaTruncated() {
        #expect(MediaSniffer.sniff(B.be32(16) + B.ascii("ftypisom")) == nil)
        #expect(MediaSniffer.sniff(B.be32(12) + B.ascii("ftypisom") + B.be32(0) + B.ascii("isom")) == nil)
    }

    @Test("MP3: an ID3v2 tag, a whole Layer III frame, or frames that follow each other")
    func mp3Accepted() {
        let id3 = B.ascii("ID3") + [4, 0, 0, 0, 0, 0x02, 0x01] + B.ascii("TIT2")
        #expect(MediaSniffer.sniff(id3)?.contentType == "audio/mpeg")
        #expect(MediaSniffer.sniff(B.mp3Frames(1))?.contentType == "audio/mpeg")
        #expect(MediaSniffer.sniff(B.mp3Frames(3))?.contentType == "audio/mpeg")
        // MPEG-2 Layer III, 64 kbit/s, 22.05 kHz: 208 bytes a frame.
        let mpeg2 = (0..<3).flatMap { _ in [0xFF, 0xF3, 0x80, 0xC4] + [UInt8](repeating: 0, count: 204) }
        #expect(MediaSniffer.sniff(mpeg2)?.contentType == "audio/mpeg")
    }

    @Test(
        "MP3: no UTF-16 BOM, other layers, free or bad bitrate, reserved rate, or a frame not followed by one",
        arguments: [
            [0xFF, 0xFE, 0x68, 0x00, 0x69, 0x00] + [UInt8](repeating: 0x41, count: 1000),  // UTF-16LE "hi"
            MediaBytes.mp3Frames(2, header: [0xFF, 0xFB, 0xF0, 0x00]),  // bitrate index 1111
            MediaBytes.mp3Frames(2, header: [0xFF, 0xFB, 0x00, 0x00]),  // free format
            MediaBytes.mp3Frames(2, header: [0xFF, 0xFB, 0x9C, 0x00]),  // sample rate index 11
            MediaBytes.mp3Frames(2, header: [0xFF, 0xFD, 0x90, 0x00]),  // Layer II
            MediaBytes.mp3Frames(2, header: [0xFF, 0xEB, 0x90, 0x00]),  // reserved version
            MediaBytes.mp3Frames(1) + [UInt8](repeating: 0x41, count: 100),  // no second frame
            MediaBytes.mp3Frames(1) + [0xFF, 0xF3, 0x90, 0x00] + [UInt8](repeating: 0, count: 300),  // another stream
            Array(MediaBytes.mp3Frames(1).prefix(200)),  // less than a frame
            [0xFF, 0xFB] + MediaBytes.ascii("anything at all"),
        ])
    func mp3Refused(bytes: [UInt8]) {
        #expect(MediaSniffer.sniff(bytes) == nil)
    }

    @Test("text that only starts like an ID3 tag is text")
    func id3LikeText() {
        #expect(MediaSniffer.sniff(B.ascii("ID3 notes: buy milk\n"))?.contentType == "text/plain; charset=utf-8")
    }

    @Test("text is UTF-8 throughout, with tab, newlines and form feed but no other control character")
    func textAccepted() {
        let text = "tabs\tand\r\nlines\u{0C} é ✓ 😀\n"
        #expect(MediaSniffer.sniff(Data(text.utf8))?.type == "FILE")
        #expect(MediaSniffer.sniff(Data(text.utf8))?.contentType == "text/plain; charset=utf-8")
        let long = String(repeating: "ligne é ✓ 😀\n", count: 20_000)
        #expect(MediaSniffer.sniff(Data(long.utf8))?.fileExtension == "txt")
    }

    @Test(
        "not text: invalid UTF-8 anywhere, a NUL or a control character anywhere, nothing at all",
        arguments: [
            MediaBytes.ascii("hello") + [0xFF, 0xFE],
            MediaBytes.ascii("hello") + [0xE2, 0x9C],  // a whole file ending in a cut character
            [UInt8](repeating: 0x23, count: 8192) + [0x7F, 0x45, 0x4C, 0x46, 0x02, 0x01, 0x01, 0x00],  // then ELF
            [UInt8](repeating: 0x41, count: 100_000) + [0x00],
            [UInt8](repeating: 0x41, count: 100_000) + [0xC3, 0x28],
            MediaBytes.ascii("bell\u{07}"), MediaBytes.ascii("escape\u{1B}[31m"), MediaBytes.ascii("delete\u{7F}"), [],
        ])
    func textRefused(bytes: [UInt8]) {
        #expect(MediaSniffer.sniff(Data(bytes)) == nil)
        #expect(MediaSniffer.sniff(bytes) == nil)
    }

    @Test("a header cut in the middle of a character is the same text; invalid bytes at its end are not")
    func headerOfText() {
        let long = Array(String(repeating: "✓", count: MediaSniffer.headerLength).utf8)
        #expect(MediaSniffer.headerLength % 3 != 0, "the header's end falls inside a ✓")
        #expect(MediaSniffer.sniff(long)?.contentType == "text/plain; charset=utf-8")
        let header = Array(long.prefix(MediaSniffer.headerLength))
        #expect(MediaSniffer.sniffHeader(header)?.contentType == "text/plain; charset=utf-8")
        #expect(MediaSniffer.sniffHeader(B.ascii("hello") + [0xFF, 0xFE]) == nil)
        #expect(MediaSniffer.sniffHeader(B.ascii("hello") + [0x9C, 0x93]) == nil)
        #expect(MediaSniffer.sniffHeader(B.ascii("hello") + [0xF0, 0x9F, 0x98]) != nil)
        #expect(MediaSniffer.sniffHeader(B.ascii("hello\u{0}")) == nil)
    }

    @Test("the gateway's header-only sniff gives every accepted file the type media gave it")
    func headerAgreesWithWholeFile() {
        var samples: [[UInt8]] = [
            B.png(width: 7, height: 5), B.gif(width: 9, height: 4), B.jpeg(width: 640, height: 480),
            B.jpeg(width: 4000, height: 3000, exif: B.exif(orientation: 6, bigEndian: true)),
            B.webpVP8X(width: 300, height: 200), B.isoMedia("isom", compatible: ["isom"]), B.mp3Frames(400),
            B.ascii("%PDF-1.4\n"), Array(String(repeating: "é✓😀 text\n", count: 10_000).utf8),
        ]
        samples.append(B.png(width: 1, height: 1) + [UInt8](repeating: 0, count: 100_000))
        for bytes in samples {
            let whole = MediaSniffer.sniff(bytes)
            #expect(whole != nil)
            #expect(MediaSniffer.sniffHeader(bytes.prefix(MediaSniffer.headerLength)) == whole)
        }
    }
}

@Suite("MediaSniffer: image sizes")
struct MediaSnifferImageTests {
    typealias B = MediaBytes

    @Test("PNG sizes from 1 to 1,000,000 are accepted")
    func pngAccepted() {
        let small = MediaSniffer.sniff(B.png(width: 7, height: 5))
        #expect(small?.contentType == "image/png" && small?.width == 7 && small?.height == 5)
        let large = MediaSniffer.sniff(B.png(width: 1_000_000, height: 1))
        #expect(large?.width == 1_000_000 && large?.height == 1)
    }

    @Test(
        "PNG sizes of 0 or over 1,000,000, or no IHDR, are refused",
        arguments: [(0x8000_0000, 1), (1, 0xFFFF_FFFF), (0, 5), (5, 0), (1_000_001, 1), (1, 1_000_001)] as [(UInt32, UInt32)]
    )
    func pngRefused(width: UInt32, height: UInt32) {
        #expect(MediaSniffer.sniff(B.png(width: width, height: height)) == nil)
    }

    @Test("a PNG signature without its IHDR chunk is refused")
    func pngWithoutHeader() {
        var noIHDR = B.png(width: 2, height: 2)
        noIHDR.replaceSubrange(12..<16, with: B.ascii("IDAT"))
        #expect(MediaSniffer.sniff(noIHDR) == nil)
        #expect(MediaSniffer.sniff(Array(B.png(width: 2, height: 2).prefix(20))) == nil)
    }

    @Test("GIF and JPEG: 1...65,535 accepted, 0 refused")
    func gifAndJPEG() {
        #expect(MediaSniffer.sniff(B.gif(width: 65_535, height: 1))?.width == 65_535)
        #expect(MediaSniffer.sniff(B.gif(width: 0, height: 4)) == nil)
        #expect(MediaSniffer.sniff(B.gif(width: 4, height: 0)) == nil)
        let jpeg = MediaSniffer.sniff(B.jpeg(width: 65_535, height: 480))
        #expect(jpeg?.contentType == "image/jpeg" && jpeg?.width == 65_535 && jpeg?.height == 480)
        #expect(MediaSniffer.sniff(B.jpeg(width: 640, height: 0)) == nil)
        #expect(MediaSniffer.sniff(B.jpeg(width: 0, height: 480)) == nil)
    }

    @Test("a JPEG whose frame header is not within the header is accepted without a size")
    func jpegWithoutFrame() {
        let jpeg = MediaSniffer.sniff([0xFF, 0xD8, 0xFF, 0xE0] + B.be16(0xFFFF) + [UInt8](repeating: 0, count: 70_000))
        #expect(jpeg?.contentType == "image/jpeg" && jpeg?.width == nil && jpeg?.height == nil)
    }

    /// Until the fifty-fourth session such a JPEG was stored without a size (a review).
    @Test("a JPEG whose frame header comes after 100 KB of other blocks has its size from the whole file")
    func jpegFrameFarIn() {
        let plain = B.jpeg(width: 4_032, height: 3_024)
        let app2 = [0xFF, 0xE2] + B.be16(50_002) + [UInt8](repeating: 0, count: 50_000)
        // After SOI and APP0 (20 bytes), two APP2 blocks of 50 KB (an ICC profile, a depth map).
        let far = Array(plain.prefix(20)) + app2 + app2 + Array(plain.dropFirst(20))
        let jpeg = MediaSniffer.sniff(far)
        #expect(jpeg?.contentType == "image/jpeg" && jpeg?.width == 4_032 && jpeg?.height == 3_024)
        // The header alone (what serving looks at) still knows it is a JPEG.
        #expect(MediaSniffer.sniffHeader(far)?.contentType == "image/jpeg")
    }

    @Test("WebP: VP8X up to 1,000,000 accepted, beyond refused; a VP8 size of 0 refused")
    func webp() {
        let extended = MediaSniffer.sniff(B.webpVP8X(width: 1_000_000, height: 300))
        #expect(extended?.contentType == "image/webp" && extended?.width == 1_000_000 && extended?.height == 300)
        #expect(MediaSniffer.sniff(B.webpVP8X(width: 1_000_001, height: 300)) == nil)
        #expect(MediaSniffer.sniff(B.webpVP8X(width: 16_777_216, height: 16_777_216)) == nil)
        #expect(MediaSniffer.sniff(B.webpVP8(width: 320, height: 240))?.height == 240)
        #expect(MediaSniffer.sniff(B.webpVP8(width: 0, height: 240)) == nil)
        #expect(MediaSniffer.sniff(Array(B.webpVP8(width: 320, height: 240).prefix(20))) == nil)
    }

    @Test(
        "a JPEG's EXIF orientation 5...8 swaps width and height, either byte order",
        arguments: [(1, false), (3, false), (5, true), (6, true), (7, true), (8, true)], [true, false])
    func jpegOrientation(orientation: (UInt16, Bool), bigEndian: Bool) {
        let exif = B.exif(orientation: orientation.0, bigEndian: bigEndian)
        let media = MediaSniffer.sniff(B.jpeg(width: 4000, height: 3000, exif: exif))
        #expect(media?.width == (orientation.1 ? 3000 : 4000))
        #expect(media?.height == (orientation.1 ? 4000 : 3000))
    }

    @Test("a broken or hostile EXIF block leaves the size as the frame gives it")
    func jpegHostileExif() {
        let good = B.exif(orientation: 6, bigEndian: false)
        let broken: [[UInt8]] = [
            Array(good.prefix(20)),  // cut in the IFD
            Array(good.prefix(10)),  // cut in the TIFF header
            B.ascii("Exif") + [0, 0] + B.ascii("II") + [42, 0] + [0xFF, 0xFF, 0xFF, 0xFF],  // IFD beyond the end
            B.ascii("Exif") + [0, 0] + B.ascii("MM") + [0, 42] + B.be32(8) + [0xFF, 0xFF],  // 65,535 entries, none there
            B.ascii("Exif") + [0, 0] + B.ascii("XX") + [0, 42] + B.be32(8),
            B.exif(orientation: 9, bigEndian: true), B.exif(orientation: 0, bigEndian: true),
        ]
        for exif in broken {
            let media = MediaSniffer.sniff(B.jpeg(width: 4000, height: 3000, exif: exif))
            #expect(media?.width == 4000 && media?.height == 3000)
        }
    }

    @Test("no crash on random bytes behind each magic number, whole or cut anywhere")
    func hostileBytes() {
        var generator = SplitMix64(seed: 2024)
        let magics: [[UInt8]] = [
            [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], [0xFF, 0xD8, 0xFF], B.ascii("GIF89a"), B.ascii("RIFF"),
            [0, 0, 0, 0x20] + B.ascii("ftyp"), [0xFF, 0xFB], B.ascii("ID3"), [0xE2, 0x9C],
        ]
        for magic in magics {
            for _ in 0..<300 {
                let length = Int.random(in: 0..<600, using: &generator)
                var bytes = magic + (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
                if magic == [0xFF, 0xD8, 0xFF], bytes.count > 20 {
                    bytes[3] = 0xE1  // an APP1 block to parse
                    bytes.replaceSubrange(6..<12, with: B.ascii("Exif") + [0, 0])
                    bytes.replaceSubrange(12..<14, with: Bool.random(using: &generator) ? B.ascii("MM") : B.ascii("II"))
                }
                for end in [bytes.count, bytes.count / 2, 3] {
                    _ = MediaSniffer.sniff(bytes.prefix(end))
                    _ = MediaSniffer.sniffHeader(bytes.prefix(end))
                }
            }
        }
    }
}

/// A seeded generator, so that a failure can be reproduced.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { self.state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("MediaSniffer: file names")
struct MediaSnifferFileNameTests {
    @Test(
        "letters, marks and digits of every script are kept, in NFC",
        arguments: [
            ("cafe\u{301}.txt", "caf\u{E9}.txt"), ("café.png", "café.png"), ("नमस्ते.txt", "नमस्ते.txt"),
            ("٢٠٢٤.pdf", "٢٠٢٤.pdf"), ("日本語.png", "日本語.png"), ("\u{1100}\u{1161}\u{11A8}.txt", "\u{AC01}.txt"),
            ("report 2024-01_final.v2.txt", "report 2024-01_final.v2.txt"), ("x\u{20DD}.txt", "x\u{20DD}.txt"),
        ])
    func kept(name: String, expected: String) {
        let sanitised = MediaSniffer.sanitizeFileName(name)
        #expect(sanitised == expected)
        #expect(Array(sanitised.unicodeScalars) == Array(expected.unicodeScalars))
    }

    @Test(
        "separators, controls, format characters, punctuation and symbols become _",
        arguments: [
            ("../../etc/pass wd?<x>.png", "pass wd__x_.png"), ("C:\\Users\\x\\report.txt", "report.txt"),
            ("\u{202E}gnp.exe", "_gnp.exe"), ("a\u{200B}b\u{200D}c.txt", "a_b_c.txt"), ("a\u{00A0}b.txt", "a_b.txt"),
            ("a\u{2028}b\u{0}c\u{7F}d\te.txt", "a_b_c_d_e.txt"), ("what?!*:|\"'.txt", "what_______.txt"),
            ("smile😀.png", "smile_.png"), ("a\u{3000}b", "a_b"),
        ])
    func replaced(name: String, expected: String) {
        #expect(MediaSniffer.sanitizeFileName(name) == expected)
    }

    @Test(
        "no dot or space at either end, and file when nothing is left",
        arguments: [
            (".bashrc", "bashrc"), ("  ..name. .", "name"), ("...", "file"), ("", "file"), ("dir/", "file"),
            ("/", "file"), (".\u{301}x", "\u{301}x"),
        ])
    func trimmed(name: String, expected: String) {
        let sanitised = MediaSniffer.sanitizeFileName(name)
        #expect(Array(sanitised.unicodeScalars) == Array(expected.unicodeScalars))
        #expect(sanitised.unicodeScalars.first != ".")
    }

    @Test("at most 100 characters and 255 UTF-8 bytes, cut between characters")
    func bounded() {
        let latin = MediaSniffer.sanitizeFileName(String(repeating: "é", count: 300))
        #expect(latin.count == 100 && latin.utf8.count == 200)
        let cjk = MediaSniffer.sanitizeFileName(String(repeating: "日", count: 300))
        #expect(cjk.count == 85 && cjk.utf8.count == 255)
        let clusters = MediaSniffer.sanitizeFileName(String(repeating: "e\u{301}\u{316}\u{317}", count: 100))
        #expect(clusters.utf8.count <= 255 && clusters.utf8.count > 245)
        #expect(clusters.unicodeScalars.last == "\u{317}", "a whole cluster at the end")
    }

    @Test("one cluster of 3,000,000 combining marks does not pass, and costs little")
    func hugeCluster() {
        let marks = String(repeating: "\u{301}\u{316}", count: 1_500_000)
        let start = ContinuousClock.now
        #expect(MediaSniffer.sanitizeFileName("a" + marks + ".png") == "file")
        let named = MediaSniffer.sanitizeFileName("name-" + String(repeating: "x", count: 50) + "a" + marks)
        #expect(named == "name-" + String(repeating: "x", count: 50))
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test(
        "sanitising a sanitised name changes nothing",
        arguments: [
            "cafe\u{301}.txt", "../x/.\u{301}a", String(repeating: "日本", count: 200), "a\u{200B}b\u{301}",
            "  .x .", String(repeating: "e\u{301}\u{316}", count: 90), "\u{1100}\u{1161}\u{11A8}",
        ])
    func idempotent(name: String) {
        let once = MediaSniffer.sanitizeFileName(name)
        #expect(MediaSniffer.sanitizeFileName(once) == once)
        #expect(Array(MediaSniffer.sanitizeFileName(once).unicodeScalars) == Array(once.unicodeScalars))
    }
}
