// Images: PNG, JPEG, GIF and WebP, with their size. A size of 0, or over the format's limit,
// refuses the file (the database keeps sizes as Postgres integers).

extension MediaSniffer {
    private typealias Size = (width: Int, height: Int)

    /// PNG, JPEG, GIF or WebP (accepted, or refused for its size), or nil for another type.
    static func imageMatch(_ b: [UInt8]) -> Match? {
        if b.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            // The IHDR chunk comes first, at a fixed place.
            let size = Self.fourCC(b, 12) == "IHDR" ? Self.pngSize(b) : nil
            return Self.image("image/png", "png", size, limit: Self.maximumImageSide, sizeRequired: true)
        }
        if b.starts(with: [0xFF, 0xD8, 0xFF]) {
            // A frame header beyond the header's bytes leaves the size unknown.
            return Self.image("image/jpeg", "jpg", Self.jpegSize(b), limit: 65_535, sizeRequired: false)
        }
        if b.starts(with: Array("GIF87a".utf8)) || b.starts(with: Array("GIF89a".utf8)) {
            return Self.image("image/gif", "gif", Self.gifSize(b), limit: 65_535, sizeRequired: true)
        }
        if b.starts(with: Array("RIFF".utf8)), Self.fourCC(b, 8) == "WEBP" {
            return Self.image("image/webp", "webp", Self.webpSize(b), limit: Self.maximumImageSide, sizeRequired: true)
        }
        return nil
    }

    private static func image(
        _ contentType: String, _ fileExtension: String, _ size: Size?, limit: Int, sizeRequired: Bool
    ) -> Match {
        if let size {
            guard (1...limit).contains(size.width), (1...limit).contains(size.height) else { return .refused }
        } else if sizeRequired {
            return .refused
        }
        return .media(
            SniffedMedia(
                type: "IMAGE", contentType: contentType, fileExtension: fileExtension, width: size?.width,
                height: size?.height))
    }

    private static func pngSize(_ b: [UInt8]) -> Size? {
        guard let width = Self.be32(b, 16), let height = Self.be32(b, 20) else { return nil }
        return (width, height)
    }

    private static func gifSize(_ b: [UInt8]) -> Size? {
        guard let width = Self.le(b, 6, count: 2), let height = Self.le(b, 8, count: 2) else { return nil }
        return (width, height)
    }

    /// The canvas of a simple lossy (`VP8 `), lossless (`VP8L`) or extended (`VP8X`) WebP.
    private static func webpSize(_ b: [UInt8]) -> Size? {
        switch Self.fourCC(b, 12) {
        case "VP8 ":
            guard let width = Self.le(b, 26, count: 2), let height = Self.le(b, 28, count: 2) else { return nil }
            return (width & 0x3FFF, height & 0x3FFF)
        case "VP8L":
            guard let bits = Self.le(b, 21, count: 4) else { return nil }
            return ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        case "VP8X":
            guard let width = Self.le(b, 24, count: 3), let height = Self.le(b, 27, count: 3) else { return nil }
            return (width + 1, height + 1)
        default:
            return nil
        }
    }

    // MARK: JPEG

    /// The size in the first start-of-frame marker (SOF0...SOF15 but DHT, JPG and DAC), as
    /// shown: width and height swapped when an earlier EXIF block turns the image a quarter.
    private static func jpegSize(_ b: [UInt8]) -> Size? {
        var index = 2
        var orientation = 1
        while index + 4 <= b.count {
            guard b[index] == 0xFF else { return nil }
            let marker = b[index + 1]
            if marker == 0xFF {  // fill byte
                index += 1
                continue
            }
            if marker == 0xD8 || marker == 0x01 || (0xD0...0xD7).contains(marker) {
                index += 2
                continue
            }
            // End of image or start of scan before any frame: no size.
            guard marker != 0xD9, marker != 0xDA, let length = Self.be16(b, index + 2), length >= 2 else { return nil }
            if (0xC0...0xCF).contains(marker), ![0xC4, 0xC8, 0xCC].contains(marker) {
                guard let height = Self.be16(b, index + 5), let width = Self.be16(b, index + 7) else { return nil }
                return (5...8).contains(orientation) ? (height, width) : (width, height)
            }
            // Within the header's bytes only, as before the whole file was walked: past them, a
            // file of tiny APP1 blocks would cost an allocation or more each (the diff review).
            if marker == 0xE1, orientation == 1, index < Self.headerLength {
                let segment = b[(index + 4)..<min(index + 2 + length, b.count)]
                orientation = Self.exifOrientation(Array(segment)) ?? 1
            }
            index += 2 + length
        }
        return nil
    }

    /// The Orientation tag (0x0112) of IFD0 in an APP1 `Exif` segment's body, either byte
    /// order, when it is 1...8.
    static func exifOrientation(_ segment: [UInt8]) -> Int? {
        guard segment.starts(with: Array("Exif".utf8) + [0, 0]) else { return nil }
        let tiff = Array(segment.dropFirst(6))
        let bigEndian: Bool
        switch Self.fourCC(tiff, 0) {
        case "MM\u{0}*": bigEndian = true
        case "II*\u{0}": bigEndian = false
        default: return nil
        }
        func u16(_ offset: Int) -> Int? {
            bigEndian ? Self.be16(tiff, offset) : Self.le(tiff, offset, count: 2)
        }
        func u32(_ offset: Int) -> Int? {
            bigEndian ? Self.be32(tiff, offset) : Self.le(tiff, offset, count: 4)
        }
        guard let ifd = u32(4), let entries = u16(ifd) else { return nil }
        for entry in 0..<entries {
            let at = ifd + 2 + 12 * entry
            guard let tag = u16(at) else { return nil }
            // SHORT (type 3), its value in the first two bytes of the value field.
            if tag == 0x0112 {
                guard u16(at + 2) == 3, let value = u16(at + 8), (1...8).contains(value) else { return nil }
                return value
            }
        }
        return nil
    }
}
