/// A W3C Trace Context `traceparent` header (https://www.w3.org/TR/trace-context/):
/// `version-traceid-parentid-flags`, for example
/// `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`.
///
/// The gateway reads it from a client's request; the trace id becomes the request's correlation
/// id (``RequestCorrelation``), which every service it touches logs and carries on.
public struct TraceParent: Sendable, Equatable {
    /// 32 lowercase hexadecimal digits, not all zero.
    public var traceID: String
    /// 16 lowercase hexadecimal digits, not all zero: the caller's span.
    public var parentID: String
    /// Bit 0 is `sampled`.
    public var flags: UInt8

    /// Parses a header value as the specification says a vendor must: version `ff` and malformed
    /// or all-zero ids are refused (the caller then starts a trace of its own); a later version is
    /// read by its first four fields, and what follows them is ignored.
    public init?(header: some StringProtocol) {
        let bytes = Array(header.utf8)
        guard bytes.count >= 55, let version = Self.hexValue(bytes[0..<2]), version != 0xff else { return nil }
        // Version 00 is exactly 55 characters; a later one may add fields after a dash.
        guard version == 0 ? bytes.count == 55 : (bytes.count == 55 || bytes[55] == UInt8(ascii: "-")) else { return nil }
        guard bytes[2] == UInt8(ascii: "-"), bytes[35] == UInt8(ascii: "-"), bytes[52] == UInt8(ascii: "-") else {
            return nil
        }
        let trace = bytes[3..<35]
        let parent = bytes[36..<52]
        guard Self.isNonZeroHex(trace), Self.isNonZeroHex(parent), let flags = Self.hexValue(bytes[53..<55]) else {
            return nil
        }
        self.traceID = String(decoding: trace, as: UTF8.self)
        self.parentID = String(decoding: parent, as: UTF8.self)
        self.flags = flags
    }

    /// A new trace id: 16 random bytes (``SecureRandom``), not all zero, in lowercase hex.
    public static func newTraceID() -> String {
        var bytes = SecureRandom.uuidBytes()
        while withUnsafeBytes(of: bytes, { $0.allSatisfy { $0 == 0 } }) { bytes = SecureRandom.uuidBytes() }
        return withUnsafeBytes(of: bytes) { bytes in
            String(unsafeUninitializedCapacity: 32) { text in
                for (index, byte) in bytes.enumerated() {
                    text[2 * index] = HexDigit.lowercase(byte >> 4)
                    text[2 * index + 1] = HexDigit.lowercase(byte & 0x0F)
                }
                return 32
            }
        }
    }

    /// Lowercase hexadecimal digits (the specification's `HEXDIGLC`), not all `0`.
    private static func isNonZeroHex(_ digits: ArraySlice<UInt8>) -> Bool {
        var nonZero = false
        for digit in digits {
            guard HexDigit.lowercaseValue(digit) != nil else { return false }
            nonZero = nonZero || digit != UInt8(ascii: "0")
        }
        return nonZero
    }

    private static func hexValue(_ digits: ArraySlice<UInt8>) -> UInt8? {
        var value: UInt8 = 0
        for digit in digits {
            guard let nibble = HexDigit.lowercaseValue(digit) else { return nil }
            value = value << 4 | nibble
        }
        return value
    }
}

/// The correlation id of the request the current task serves: the W3C trace id of the client's
/// request (the gateway's `traceparent`, or one it started). Bound by the gateway around each REST
/// request and Socket.IO command, and by every service around each RPC it serves, from the
/// request's envelope. Envelopes made while it is bound carry it (``Envelope``'s `correlationId`),
/// so it follows the request into the RPCs and domain events it causes; log lines written while
/// it is bound carry it as `correlation_id` (the services' logging bootstrap).
public enum RequestCorrelation {
    @TaskLocal public static var id: String?
}
