// ISO base media files (MP4, QuickTime, M4A, 3GP) by their brands, and MP3 by its frames.

extension MediaSniffer {
    // MARK: ISO base media (`ftyp`)

    private static func mp4Video() -> SniffedMedia {
        SniffedMedia(type: "VIDEO", contentType: "video/mp4", fileExtension: "mp4")
    }

    /// The major brands accepted, and what each file is.
    private static let isoBrands: [String: SniffedMedia] = {
        var brands: [String: SniffedMedia] = [:]
        for brand in Self.mp4VideoBrands { brands[brand] = Self.mp4Video() }
        brands["qt  "] = SniffedMedia(type: "VIDEO", contentType: "video/quicktime", fileExtension: "mov")
        for brand in ["M4A ", "M4B "] {
            brands[brand] = SniffedMedia(type: "AUDIO", contentType: "audio/mp4", fileExtension: "m4a")
        }
        for brand in ["3gp4", "3gp5", "3gp6"] {
            brands[brand] = SniffedMedia(type: "VIDEO", contentType: "video/3gpp", fileExtension: "3gp")
        }
        brands["3g2a"] = SniffedMedia(type: "VIDEO", contentType: "video/3gpp2", fileExtension: "3g2")
        return brands
    }()

    /// The brands of MP4 video: ISO base media, MPEG-4, H.264, Apple's M4V, DASH, Sony's MSNV.
    private static let mp4VideoBrands: Set<String> = [
        "isom", "iso2", "iso3", "iso4", "iso5", "iso6", "mp41", "mp42", "avc1", "M4V ", "M4VH", "M4VP", "dash", "MSNV",
    ]

    /// Brands of still images and camera raw files in the same container (HEIF and HEIC, AVIF,
    /// Canon CR3): a file naming any of them is refused, whatever else it names.
    private static let imageBrands: Set<String> = [
        "mif1", "mif2", "msf1", "miaf", "heic", "heix", "heim", "heis", "hevc", "hevx", "avif", "avis", "avio", "MiHE",
        "MiHB", "MiHA", "MiPr", "crx ", "jpeg", "jpgs",
    ]

    /// A file with an `ftyp` box: its major brand says what it is when it is one of
    /// ``isoBrands``; another major brand is MP4 video when a compatible brand is an MP4 one
    /// (a camera's own brand, such as Sony's `XAVC`); any image brand refuses it.
    static func isoMediaMatch(_ b: [UInt8]) -> Match {
        // size, "ftyp", major brand, minor version, compatible brands.
        guard let boxSize = Self.be32(b, 0), boxSize >= 16, b.count >= 16 else { return .refused }
        let major = Self.fourCC(b, 8)
        let compatible = stride(from: 16, to: min(boxSize, b.count) - 3, by: 4).map { Self.fourCC(b, $0) }
        guard !Self.imageBrands.contains(major), !compatible.contains(where: Self.imageBrands.contains) else {
            return .refused
        }
        if let media = Self.isoBrands[major] { return .media(media) }
        return compatible.contains(where: Self.mp4VideoBrands.contains) ? .media(Self.mp4Video()) : .refused
    }

    // MARK: MP3

    /// An ID3v2 tag, or MPEG audio Layer III frames: a whole first frame, and a second frame
    /// header where the first frame ends when the bytes go on that far.
    static func isMP3(_ b: [UInt8]) -> Bool {
        if Self.hasID3Tag(b) { return true }
        guard let first = Self.mp3Frame(b, at: 0), b.count >= first.length else { return false }
        guard b.count >= first.length + 4 else { return true }
        return Self.mp3Frame(b, at: first.length)?.stream == first.stream
    }

    /// `ID3`, a version 2...4, a revision other than 0xFF, flags, and a 4-byte syncsafe size.
    private static func hasID3Tag(_ b: [UInt8]) -> Bool {
        b.count >= 10 && b.starts(with: Array("ID3".utf8)) && (2...4).contains(b[3]) && b[4] != 0xFF
            && b[6..<10].allSatisfy { $0 < 0x80 }
    }

    /// Kilobits per second by bitrate index (1...14), for MPEG-1 and for MPEG-2/2.5 Layer III.
    private static let mpeg1Bitrates = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320]
    private static let mpeg2Bitrates = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160]

    /// The MPEG audio Layer III frame header at `offset`: its length in bytes, and what must be
    /// the same in the next frame (version, layer and sample rate). Nil for anything else,
    /// including the free (0) and bad (15) bitrate indexes and the reserved sample rate (3).
    private static func mp3Frame(_ b: [UInt8], at offset: Int) -> (length: Int, stream: Int)? {
        guard offset >= 0, offset + 4 <= b.count, b[offset] == 0xFF, b[offset + 1] & 0xE0 == 0xE0 else { return nil }
        let version = Int(b[offset + 1] >> 3) & 3  // 0: MPEG-2.5, 1: reserved, 2: MPEG-2, 3: MPEG-1
        let layer = Int(b[offset + 1] >> 1) & 3  // 1: Layer III
        let bitrateIndex = Int(b[offset + 2] >> 4)
        let rateIndex = Int(b[offset + 2] >> 2) & 3
        let padding = Int(b[offset + 2] >> 1) & 1
        let emphasis = b[offset + 3] & 3  // 2 is reserved
        guard version != 1, layer == 1, (1...14).contains(bitrateIndex), rateIndex != 3, emphasis != 2 else { return nil }
        let kilobits = (version == 3 ? Self.mpeg1Bitrates : Self.mpeg2Bitrates)[bitrateIndex]
        let sampleRate = [44_100, 48_000, 32_000][rateIndex] >> (version == 3 ? 0 : version == 2 ? 1 : 2)
        let length = (version == 3 ? 144 : 72) * kilobits * 1000 / sampleRate + padding
        return (length, version << 4 | layer << 2 | rateIndex)
    }
}
