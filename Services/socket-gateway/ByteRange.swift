import Foundation

/// The part of a file a `Range` request header asks for (RFC 9110, section 14), for the media
/// files the gateway serves. One range of bytes is served as 206; a header this does not take
/// (another unit, several ranges, bad syntax) is ignored, as the RFC allows, and the whole file
/// is served.
enum ByteRange: Equatable {
    /// No range, or one that is ignored: the whole file, 200.
    case whole
    /// These bytes, 206.
    case part(ClosedRange<Int>)
    /// No byte of the file is in the range: 416.
    case unsatisfiable

    /// The range `header` asks of a file of `size` bytes.
    init(header: String?, size: Int) {
        guard let header, let spec = Self.singleSpec(header) else {
            self = .whole
            return
        }
        let bounds = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard bounds.count == 2 else {
            self = .whole
            return
        }
        let first = Self.number(bounds[0])
        let last = Self.number(bounds[1])
        switch (bounds[0].isEmpty, bounds[1].isEmpty) {
        case (true, false):  // the last n bytes
            guard let count = last else {
                self = .whole
                return
            }
            self = count == 0 || size == 0 ? .unsatisfiable : .part(max(0, size - count)...(size - 1))
        case (false, _):
            guard let first, bounds[1].isEmpty || last.map({ $0 >= first }) == true else {
                self = .whole
                return
            }
            guard first < size else {
                self = .unsatisfiable
                return
            }
            self = .part(first...min(last ?? (size - 1), size - 1))
        case (true, true):
            self = .whole
        }
    }

    /// The one range spec of a `bytes=` header; nil for another unit or several ranges.
    private static func singleSpec(_ header: String) -> Substring? {
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        guard trimmed.lowercased().hasPrefix("bytes=") else { return nil }
        let specs = trimmed.dropFirst("bytes=".count).split(separator: ",", omittingEmptySubsequences: false)
        guard specs.count == 1 else { return nil }
        return Substring(specs[0].trimmingCharacters(in: .whitespaces))
    }

    /// A whole number of decimal digits, at most 18 of them (no sign, no overflow).
    private static func number(_ text: Substring) -> Int? {
        guard (1...18).contains(text.count), text.allSatisfy({ ("0"..."9").contains($0) }) else { return nil }
        return Int(text)
    }
}
