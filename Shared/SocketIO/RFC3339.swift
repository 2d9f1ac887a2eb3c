/// The instants an RFC 3339 timestamp can name: the years 1 to 9999.
public enum RFC3339 {
    /// Those instants in seconds since 1970. The gateway's fan-out writes a msgpack date inside
    /// them as its text (any other as null), and a service reads no timestamp outside them
    /// (`Timestamp.parse`, in MessengerContracts).
    public static let representable: Range<Double> = -62_135_596_800..<253_402_300_800
}
