extension Array where Element == Double {
    /// The value at fraction `p` (0.5 for the median, 0.99 for p99) of these values, which must
    /// be sorted; nil when there are none.
    public func percentile(_ p: Double) -> Double? {
        self.isEmpty ? nil : self[Swift.min(self.count - 1, Int(Double(self.count) * p))]
    }
}
