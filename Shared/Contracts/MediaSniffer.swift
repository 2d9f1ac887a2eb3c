/// What a file is, judged from its first bytes (magic numbers), never from its name or a declared
/// type: the attachment `type`, the served `Content-Type`, and for images their size.
public struct SniffedMedia: Hashable, Sendable {
    /// `IMAGE`, `VIDEO`, `AUDIO` or `FILE`.
    public var type: String
    public var contentType: String
    /// The usual file extension for `contentType`.
    public var fileExtension: String
    public var width: Int?
    public var height: Int?
}

/// Recognises the allowed file types from their bytes (protocol.md: `type` and `contentType`
/// come from the bytes; `width`/`height` for PNG, JPEG, GIF and WebP).
public enum MediaSniffer {
    /// The bytes needed to recognise a file and read an image's size in all but unusual JPEGs.
    public static let headerLength = 64 * 1024

    /// The media type of a file starting with `bytes`, or nil when it is not an allowed type.
    public static func sniff(_ bytes: some Collection<UInt8>) -> SniffedMedia? {
        let b = Array(bytes.prefix(Self.headerLength))
        func starts(_ prefix: [UInt8], at offset: Int = 0) -> Bool {
            b.count >= offset + prefix.count && Array(b[offset..<offset + prefix.count]) == prefix
        }
        func ascii(_ text: String, at offset: Int = 0) -> Bool { starts(Array(text.utf8), at: offset) }

        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            let size = b.count >= 24 ? (Self.be32(b, 16), Self.be32(b, 20)) : nil
            return SniffedMedia(type: "IMAGE", contentType: "image/png", fileExtension: "png", width: size?.0, height: size?.1)
        }
        if starts([0xFF, 0xD8, 0xFF]) {
            let size = Self.jpegSize(b)
            return SniffedMedia(type: "IMAGE", contentType: "image/jpeg", fileExtension: "jpg", width: size?.0, height: size?.1)
        }
        if ascii("GIF87a") || ascii("GIF89a") {
            let size = b.count >= 10 ? (Int(b[6]) | Int(b[7]) << 8, Int(b[8]) | Int(b[9]) << 8) : nil
            return SniffedMedia(type: "IMAGE", contentType: "image/gif", fileExtension: "gif", width: size?.0, height: size?.1)
        }
        if ascii("RIFF") && ascii("WEBP", at: 8) {
            let size = Self.webpSize(b)
            return SniffedMedia(type: "IMAGE", contentType: "image/webp", fileExtension: "webp", width: size?.0, height: size?.1)
        }
        if ascii("RIFF") && ascii("WAVE", at: 8) {
            return SniffedMedia(type: "AUDIO", contentType: "audio/wav", fileExtension: "wav")
        }
        if ascii("ftyp", at: 4) {
            let brand = b.count >= 12 ? String(decoding: b[8..<12], as: UTF8.self) : ""
            if brand.hasPrefix("M4A") {
                return SniffedMedia(type: "AUDIO", contentType: "audio/mp4", fileExtension: "m4a")
            }
            if brand.hasPrefix("qt") {
                return SniffedMedia(type: "VIDEO", contentType: "video/quicktime", fileExtension: "mov")
            }
            return SniffedMedia(type: "VIDEO", contentType: "video/mp4", fileExtension: "mp4")
        }
        if starts([0x1A, 0x45, 0xDF, 0xA3]) {
            return SniffedMedia(type: "VIDEO", contentType: "video/webm", fileExtension: "webm")
        }
        if ascii("OggS") {
            return SniffedMedia(type: "AUDIO", contentType: "audio/ogg", fileExtension: "ogg")
        }
        if ascii("ID3") || (b.count >= 2 && b[0] == 0xFF && (b[1] & 0xE0) == 0xE0 && (b[1] & 0x06) != 0) {
            return SniffedMedia(type: "AUDIO", contentType: "audio/mpeg", fileExtension: "mp3")
        }
        if ascii("%PDF-") {
            return SniffedMedia(type: "FILE", contentType: "application/pdf", fileExtension: "pdf")
        }
        if starts([0x50, 0x4B, 0x03, 0x04]) {
            return SniffedMedia(type: "FILE", contentType: "application/zip", fileExtension: "zip")
        }
        if !b.isEmpty, Self.isText(b) {
            return SniffedMedia(type: "FILE", contentType: "text/plain; charset=utf-8", fileExtension: "txt")
        }
        return nil
    }

    private static func be32(_ b: [UInt8], _ offset: Int) -> Int {
        Int(b[offset]) << 24 | Int(b[offset + 1]) << 16 | Int(b[offset + 2]) << 8 | Int(b[offset + 3])
    }

    private static func be16(_ b: [UInt8], _ offset: Int) -> Int { Int(b[offset]) << 8 | Int(b[offset + 1]) }

    /// The size in the first start-of-frame marker (SOF0...SOF15 but DHT, JPG and DAC).
    private static func jpegSize(_ b: [UInt8]) -> (Int, Int)? {
        var index = 2
        while index + 9 < b.count {
            guard b[index] == 0xFF else { return nil }
            let marker = b[index + 1]
            if marker == 0xFF {
                index += 1
                continue
            }
            if marker == 0xD8 || marker == 0x01 || (0xD0...0xD7).contains(marker) {
                index += 2
                continue
            }
            let length = Self.be16(b, index + 2)
            if (0xC0...0xCF).contains(marker), ![0xC4, 0xC8, 0xCC].contains(marker) {
                return (Self.be16(b, index + 7), Self.be16(b, index + 5))
            }
            index += 2 + length
        }
        return nil
    }

    private static func webpSize(_ b: [UInt8]) -> (Int, Int)? {
        guard b.count >= 30 else { return nil }
        let chunk = String(decoding: b[12..<16], as: UTF8.self)
        switch chunk {
        case "VP8 ":
            return ((Int(b[26]) | Int(b[27]) << 8) & 0x3FFF, (Int(b[28]) | Int(b[29]) << 8) & 0x3FFF)
        case "VP8L":
            let bits = Int(b[21]) | Int(b[22]) << 8 | Int(b[23]) << 16 | Int(b[24]) << 24
            return ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        case "VP8X":
            return (
                (Int(b[24]) | Int(b[25]) << 8 | Int(b[26]) << 16) + 1, (Int(b[27]) | Int(b[28]) << 8 | Int(b[29]) << 16) + 1
            )
        default:
            return nil
        }
    }

    /// UTF-8 without NUL or other control characters than tab, newlines and form feed (a
    /// multi-byte character cut by the header's end is fine).
    private static func isText(_ b: [UInt8]) -> Bool {
        let sample = b.count > 8192 ? Array(b.prefix(8192)) : b
        guard !sample.contains(where: { $0 < 0x20 && ![0x09, 0x0A, 0x0C, 0x0D].contains($0) || $0 == 0x7F }) else { return false }
        var trimmed = sample[...]
        // Drop a character cut at the end of the sample.
        for _ in 0..<3 where String(validating: trimmed, as: UTF8.self) == nil && !trimmed.isEmpty {
            trimmed = trimmed.dropLast()
        }
        return String(validating: trimmed, as: UTF8.self) != nil
    }

    /// A file name safe to show and to store: the last path component, characters outside
    /// letters, digits, space, `.`, `_` and `-` replaced by `_`, no leading dot, at most 100
    /// characters; `file` when nothing is left.
    public static func sanitizeFileName(_ name: String) -> String {
        let last = name.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        var cleaned = String(
            last.unicodeScalars.map { scalar -> Character in
                let allowed =
                    scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || " ._-".unicodeScalars.contains(scalar)
                return allowed && scalar.value >= 0x20 ? Character(scalar) : "_"
            })
        cleaned = cleaned.trimmingCharacters(in: " .")
        if cleaned.count > 100 { cleaned = String(cleaned.prefix(100)) }
        return cleaned.isEmpty ? "file" : cleaned
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var scalars = Substring(self)
        while let first = scalars.first, set.contains(first) { scalars = scalars.dropFirst() }
        while let last = scalars.last, set.contains(last) { scalars = scalars.dropLast() }
        return String(scalars)
    }
}
