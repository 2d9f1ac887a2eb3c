import Foundation

/// One measured line of the report.
struct Measurement: Codable {
    var name: String
    var value: Double
    var unit: String
    var note: String = ""
}

/// Prints the table and writes the JSON result.
struct BenchmarkReport: Codable {
    var startedAt: String
    var host: String
    var parameters: [String: String]
    var measurements: [Measurement] = []

    mutating func add(_ name: String, _ value: Double, _ unit: String, note: String = "") {
        self.measurements.append(Measurement(name: name, value: value, unit: unit, note: note))
        let formatted = value >= 100 ? String(format: "%.0f", value) : String(format: "%.3f", value)
        FileHandle.standardOutput.write(
            Data(
                "  \(name.padding(toLength: 46, withPad: " ", startingAt: 0)) \(formatted.leftPadded(12)) \(unit)  \(note)\n".utf8
            ))
    }

    func write(to directory: String) throws -> String {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = "\(directory)/foundation-bench-\(self.startedAt.replacingOccurrences(of: ":", with: "-")).json"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
        return path
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        self.count >= width ? self : String(repeating: " ", count: width - self.count) + self
    }
}
