import Configuration
import Foundation

/// A configuration value that is missing or malformed. Its description is the one line a service
/// prints before it exits at start.
public struct ConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    public var variable: String
    public var problem: String

    public init(variable: String, problem: String) {
        self.variable = variable
        self.problem = problem
    }

    public var description: String { "configuration error: \(self.variable) \(self.problem)" }
}

/// The process environment, with a `.env` file (the variables it does not set) underneath.
///
/// Values are read once at start into typed settings; every reader names the variable it reads
/// so that an error can say which one is wrong.
public struct ServiceEnvironment: Sendable {
    private let reader: ConfigReader

    /// Reads the process environment and a `.env` file under it. The process environment wins.
    ///
    /// The file is `ENV_FILE` when that is set: it must then exist (an empty `ENV_FILE` means
    /// none), since a file named on purpose and missing (a typo, a secret volume not mounted)
    /// would otherwise start the service on defaults, a generated signing key and `*` for CORS
    /// among them, with nothing said (until the fifty-ninth session; a review). Unset, it is
    /// `.env` in the working directory when there is one.
    public static func load() throws -> ServiceEnvironment {
        let named = ProcessInfo.processInfo.environment["ENV_FILE"]
        let path = named ?? ".env"
        if let named, !named.isEmpty, !FileManager.default.fileExists(atPath: named) {
            throw ConfigurationError(variable: "ENV_FILE", problem: "names a file that does not exist: \(named)")
        }
        var contents = ""
        if !path.isEmpty, FileManager.default.fileExists(atPath: path) {
            // Read through a handle, to the end: `FileManager.contents(atPath:)` refuses a
            // device such as /dev/null, which the tests name for "no variables".
            guard let handle = FileHandle(forReadingAtPath: path),
                let data = try? handle.readToEnd() ?? Data()
            else {
                throw ConfigurationError(variable: "ENV_FILE", problem: "cannot be read: \(path)")
            }
            try? handle.close()
            contents = String(decoding: data, as: UTF8.self)
        }
        let file = EnvironmentVariablesProvider(environmentVariables: DotEnvFile.variables(in: contents))
        return ServiceEnvironment(reader: ConfigReader(providers: [EnvironmentVariablesProvider(), file]))
    }

    /// An environment read from `.env` text alone (tests).
    public init(dotEnv contents: String) {
        self.init(DotEnvFile.variables(in: contents))
    }

    /// An environment made of exactly these variables (tests).
    public init(_ variables: [String: String]) {
        self.init(reader: ConfigReader(provider: EnvironmentVariablesProvider(environmentVariables: variables)))
    }

    private init(reader: ConfigReader) {
        self.reader = reader
    }

    /// The value as set, empty included; nil only when unset: for a variable whose empty value
    /// means "none" rather than "the default" (`CORS_ORIGIN=`).
    public func asSet(_ variable: String) -> String? {
        self.reader.string(forKey: ConfigKey(variable))
    }

    /// The value, or nil when unset or empty.
    public func optional(_ variable: String) -> String? {
        guard let value = self.reader.string(forKey: ConfigKey(variable)), !value.isEmpty else { return nil }
        return value
    }

    public func required(_ variable: String) throws -> String {
        guard let value = self.optional(variable) else {
            throw ConfigurationError(variable: variable, problem: "is required but not set")
        }
        return value
    }

    public func string(_ variable: String, default defaultValue: String) -> String {
        self.optional(variable) ?? defaultValue
    }

    /// An integer in `range`, or `defaultValue` when unset.
    public func int(_ variable: String, default defaultValue: Int, in range: ClosedRange<Int> = Int.min...Int.max) throws -> Int {
        guard let text = self.optional(variable) else { return defaultValue }
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)), range.contains(value) else {
            throw ConfigurationError(
                variable: variable, problem: "must be an integer in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
        }
        return value
    }

    /// A TCP port number.
    public func port(_ variable: String, default defaultValue: Int) throws -> Int {
        try self.int(variable, default: defaultValue, in: 1...65535)
    }

    /// A duration given in milliseconds.
    public func milliseconds(_ variable: String, default defaultValue: Int, in range: ClosedRange<Int> = 1...3_600_000) throws
        -> Duration
    {
        .milliseconds(try self.int(variable, default: defaultValue, in: range))
    }

    /// One of `choices`.
    public func choice(_ variable: String, default defaultValue: String, among choices: [String]) throws -> String {
        let value = self.string(variable, default: defaultValue).lowercased()
        guard choices.contains(value) else {
            throw ConfigurationError(
                variable: variable, problem: "must be one of \(choices.joined(separator: ", ")), got '\(value)'")
        }
        return value
    }

    /// Parses the value with `parse`, turning its error into a ``ConfigurationError``.
    public func parsed<T>(_ variable: String, _ parse: (String) throws -> T) throws -> T {
        let text = try self.required(variable)
        do {
            return try parse(text)
        } catch {
            throw ConfigurationError(variable: variable, problem: "is malformed: \(error)")
        }
    }
}
