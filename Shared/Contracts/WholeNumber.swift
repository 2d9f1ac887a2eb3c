extension KeyedDecodingContainer {
    /// A whole number, as clients write it in JSON: exactly, or as a double that is whole (the
    /// gateway carries numbers as doubles, so 2^63 - 1 reaches a service as
    /// 9.223372036854776e18), or past `Int64`'s range (JSON numbers have no bound) as
    /// `Int64.max` or `.min`. Anything else (`1.5`, a string) is an error naming `key`.
    public func decodeWholeNumber(forKey key: Key) throws -> Int64 {
        if let exact = try? self.decode(Int64.self, forKey: key) { return exact }
        let number = try self.decode(Double.self, forKey: key)
        guard number == number.rounded() else {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: self, debugDescription: "\(key.stringValue) must be a whole number")
        }
        return Int64(exactly: number) ?? (number < 0 ? .min : .max)
    }
}
