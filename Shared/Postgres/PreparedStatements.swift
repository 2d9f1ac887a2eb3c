import PostgresNIO

/// A statement PostgreSQL parses and plans once per connection, then runs by name: for the
/// statements a service runs for every message. A query sent as text is parsed, analysed and
/// planned on every run; at one message per transaction that was 40 % of PostgreSQL's CPU
/// (perf, the end-to-end latency floor).
///
/// Rows come back as they are; decode them at the call site (`row.decode((UUID, Int64).self)`).
///
/// Each statement names itself (`static let name`, unique within its service): postgres-nio's
/// default name, `String(reflecting:)` of the type, is built again for every execution.
public protocol PreparedRows: PostgresPreparedStatement where Row == PostgresRow {}

extension PreparedRows {
    public func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}

/// A prepared statement that returns no rows (an insert or an update); running it waits for its
/// completion.
public protocol PreparedCommand: PostgresPreparedStatement where Row == () {}

extension PreparedCommand {
    public func decodeRow(_ row: PostgresRow) throws {}
}

extension PostgresBindings {
    /// Bindings of `values`, in order (`$1`, `$2`, ...).
    public init(_ values: any PostgresDynamicTypeEncodable...) {
        self.init(capacity: values.count)
        for value in values { self.append(value) }
    }
}
