/// What a file is, judged from its bytes (magic numbers), never from its name or a declared
/// type: the attachment `type`, the served `Content-Type`, and for images their size.
public struct SniffedMedia: Hashable, Sendable {
    /// `IMAGE`, `VIDEO`, `AUDIO` or `FILE`.
    public var type: String
    /// The media type the file is stored and served as, such as `image/png`.
    public var contentType: String
    /// The usual file extension for `contentType`.
    public var fileExtension: String
    /// An image's width in pixels as it is shown (a JPEG's EXIF orientation applied); nil for
    /// other types, and for a JPEG whose frame header is not within the first
    /// ``MediaSniffer/headerLength`` bytes.
    public var width: Int?
    /// An image's height in pixels as it is shown; nil when `width` is.
    public var height: Int?
}

/// Recognises the allowed file types from their bytes (protocol.md: `type` and `contentType`
/// come from the bytes; `width`/`height` for PNG, JPEG, GIF and WebP). docs/media.md ("Type
/// from the bytes") states the rules.
public enum MediaSniffer {
    /// The bytes needed to recognise a file and read an image's size in all but unusual JPEGs.
    /// Everything but text is judged on this many first bytes.
    public static let headerLength = 64 * 1024

    /// The largest width or height accepted for PNG and WebP (libpng's default limit). JPEG and
    /// GIF store theirs in 16 bits, so their limit is 65,535.
    public static let maximumImageSide = 1_000_000

    /// The media type of a whole file, or nil when it is not an allowed type: a binary type
    /// from its first ``headerLength`` bytes, text only when all of `bytes` is text. A JPEG
    /// whose frame header comes later (large ICC, XMP or depth-map blocks before it, as phones
    /// write) has its size read from the whole file: until the fifty-fourth session it was
    /// stored without one, where protocol.md gives JPEGs a `width` and `height` (a review).
    public static func sniff(_ bytes: some Collection<UInt8>) -> SniffedMedia? {
        let header = Array(bytes.prefix(Self.headerLength))
        switch Self.binaryMatch(header) {
        case .media(let media) where media.contentType == "image/jpeg" && media.width == nil && bytes.count > header.count:
            switch Self.imageMatch(Array(bytes)) {
            case .media(let whole)?: return whole
            case .refused?: return nil
            case .unknown?, nil: return media
            }
        case .media(let media): return media
        case .refused: return nil
        case .unknown: return Self.isText(bytes, endMayBeCut: false) ? Self.text : nil
        }
    }

    /// The media type of a stored file from its first ``headerLength`` bytes (all of it when
    /// shorter), for serving a file ``sniff(_:)`` accepted: the same answer, as the only
    /// difference is that text may end in a character the prefix cut.
    public static func sniffHeader(_ header: some Collection<UInt8>) -> SniffedMedia? {
        let header = Array(header.prefix(Self.headerLength))
        switch Self.binaryMatch(header) {
        case .media(let media): return media
        case .refused: return nil
        case .unknown: return Self.isText(header, endMayBeCut: true) ? Self.text : nil
        }
    }

    /// What the magic numbers say: a type, a known type refused (a brand or a size not
    /// allowed), or nothing known (which may still be text).
    enum Match {
        case media(SniffedMedia)
        case refused
        case unknown
    }

    private static let text = SniffedMedia(
        type: "FILE", contentType: "text/plain; charset=utf-8", fileExtension: "txt")

    private static func binaryMatch(_ b: [UInt8]) -> Match {
        if let image = Self.imageMatch(b) { return image }
        if b.starts(with: Self.ascii("RIFF")), Self.has(b, "WAVE", at: 8) {
            return .media(SniffedMedia(type: "AUDIO", contentType: "audio/wav", fileExtension: "wav"))
        }
        if Self.has(b, "ftyp", at: 4) { return Self.isoMediaMatch(b) }
        if b.starts(with: [0x1A, 0x45, 0xDF, 0xA3]) {
            return .media(SniffedMedia(type: "VIDEO", contentType: "video/webm", fileExtension: "webm"))
        }
        if b.starts(with: Self.ascii("OggS")) {
            return .media(SniffedMedia(type: "AUDIO", contentType: "audio/ogg", fileExtension: "ogg"))
        }
        if Self.isMP3(b) {
            return .media(SniffedMedia(type: "AUDIO", contentType: "audio/mpeg", fileExtension: "mp3"))
        }
        if b.starts(with: Self.ascii("%PDF-")) {
            return .media(SniffedMedia(type: "FILE", contentType: "application/pdf", fileExtension: "pdf"))
        }
        if b.starts(with: [0x50, 0x4B, 0x03, 0x04]) {
            return .media(SniffedMedia(type: "FILE", contentType: "application/zip", fileExtension: "zip"))
        }
        return .unknown
    }

    // MARK: Bytes

    private static func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }

    private static func has(_ b: [UInt8], _ text: String, at offset: Int) -> Bool {
        b.dropFirst(offset).starts(with: text.utf8)
    }

    /// The 4 bytes at `offset` as text (a brand, a chunk name); "" past the end.
    static func fourCC(_ b: [UInt8], _ offset: Int) -> String {
        guard offset >= 0, offset + 4 <= b.count else { return "" }
        return String(decoding: b[offset..<offset + 4], as: UTF8.self)
    }

    static func be16(_ b: [UInt8], _ offset: Int) -> Int? {
        guard offset >= 0, offset + 2 <= b.count else { return nil }
        return Int(b[offset]) << 8 | Int(b[offset + 1])
    }

    static func be32(_ b: [UInt8], _ offset: Int) -> Int? {
        guard let high = Self.be16(b, offset), let low = Self.be16(b, offset + 2) else { return nil }
        return high << 16 | low
    }

    /// `count` bytes (at most 4) at `offset`, least significant first.
    static func le(_ b: [UInt8], _ offset: Int, count: Int) -> Int? {
        guard offset >= 0, count <= 4, offset + count <= b.count else { return nil }
        return (0..<count).reduce(0) { $0 | Int(b[offset + $1]) << (8 * $1) }
    }

    // MARK: Text

    /// UTF-8 throughout, without NUL or other control characters than tab, line feed, form
    /// feed and carriage return (nor DEL). With `endMayBeCut`, an incomplete multi-byte
    /// sequence at the very end is taken as cut by a prefix and left out.
    private static func isText(_ bytes: some Collection<UInt8>, endMayBeCut: Bool) -> Bool {
        guard !bytes.isEmpty, !Self.containsControl(bytes) else { return false }
        guard endMayBeCut else { return String(validating: bytes, as: UTF8.self) != nil }
        let b = Array(bytes)
        return String(validating: b[..<Self.lengthWithoutCutSequence(b)], as: UTF8.self) != nil
    }

    /// Over contiguous bytes (`Data`, arrays) when it can: 25 MiB in milliseconds.
    private static func containsControl(_ bytes: some Collection<UInt8>) -> Bool {
        if let found = bytes.withContiguousStorageIfAvailable({ $0.contains(where: Self.isControl) }) { return found }
        return bytes.contains(where: Self.isControl)
    }

    private static func isControl(_ byte: UInt8) -> Bool {
        (byte < 0x20 && byte != 0x09 && byte != 0x0A && byte != 0x0C && byte != 0x0D) || byte == 0x7F
    }

    /// `b.count`, less the bytes of a multi-byte sequence that its end cuts short (a lead byte
    /// and fewer continuation bytes than it announces).
    static func lengthWithoutCutSequence(_ b: [UInt8]) -> Int {
        var lead = b.count - 1
        while lead >= 0, b.count - lead <= 3, b[lead] & 0xC0 == 0x80 { lead -= 1 }
        guard lead >= 0 else { return b.count }
        let announced: Int
        switch b[lead] {
        case 0xC2...0xDF: announced = 2
        case 0xE0...0xEF: announced = 3
        case 0xF0...0xF4: announced = 4
        default: announced = 1
        }
        return b.count - lead < announced ? lead : b.count
    }
}
