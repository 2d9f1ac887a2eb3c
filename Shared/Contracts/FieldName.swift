extension Array where Element == any CodingKey {
    /// The field a decoding error's coding path names, as a client writes it: `files[0].data`
    /// (empty for the top level).
    public var fieldName: String {
        self.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            .replacingOccurrences(of: ".[", with: "[")
    }
}
