import CRabbitMQ
import Foundation

/// Owns C copies of strings and field tables for the length of one librabbitmq call.
///
/// `amqp_cstring_bytes(swiftString)` would point into a temporary; everything handed to the
/// library is copied here. It is a bump allocator over chunks that are kept across `reset()`, so
/// the publish path reuses one arena and allocates nothing per message once warm.
final class CArena {
    private struct Chunk {
        var base: UnsafeMutableRawPointer
        var size: Int
    }

    private var chunks: [Chunk] = []
    private var current = 0
    private var offset = 0

    deinit {
        for chunk in self.chunks { chunk.base.deallocate() }
    }

    /// Forgets every allocation, keeping the memory for the next call.
    func reset() {
        self.current = 0
        self.offset = 0
    }

    private func allocate(_ count: Int, alignment: Int = 8) -> UnsafeMutableRawPointer {
        while self.current < self.chunks.count {
            let chunk = self.chunks[self.current]
            let aligned = (self.offset + alignment - 1) & ~(alignment - 1)
            if aligned + count <= chunk.size {
                self.offset = aligned + count
                return chunk.base + aligned
            }
            self.current += 1
            self.offset = 0
        }
        let size = max(count + alignment, 16 * 1024)
        self.chunks.append(Chunk(base: UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16), size: size))
        self.offset = 0
        return self.allocate(count, alignment: alignment)
    }

    /// A NUL-terminated copy (so `bytes` is also a valid C string).
    func bytes(_ string: String) -> amqp_bytes_t {
        var string = string
        return string.withUTF8 { utf8 in
            let pointer = self.allocate(utf8.count + 1, alignment: 1)
            if let base = utf8.baseAddress { pointer.copyMemory(from: base, byteCount: utf8.count) }
            pointer.storeBytes(of: 0, toByteOffset: utf8.count, as: UInt8.self)
            return amqp_bytes_t(len: utf8.count, bytes: pointer)
        }
    }

    func cString(_ string: String) -> UnsafePointer<CChar> {
        UnsafePointer(self.bytes(string).bytes.assumingMemoryBound(to: CChar.self))
    }

    func bytes(_ raw: [UInt8]) -> amqp_bytes_t {
        let pointer = self.allocate(raw.count)
        raw.withUnsafeBytes { if let base = $0.baseAddress { pointer.copyMemory(from: base, byteCount: $0.count) } }
        return amqp_bytes_t(len: raw.count, bytes: pointer)
    }

    func table(_ values: [String: AMQPFieldValue]) -> amqp_table_t {
        guard !values.isEmpty else { return amqp_empty_table }
        let entries = self.allocate(MemoryLayout<amqp_table_entry_t>.stride * values.count)
            .bindMemory(to: amqp_table_entry_t.self, capacity: values.count)
        for (index, (key, value)) in values.sorted(by: { $0.key < $1.key }).enumerated() {
            entries[index] = amqp_table_entry_t(key: self.bytes(key), value: self.field(value))
        }
        return amqp_table_t(num_entries: Int32(values.count), entries: entries)
    }

    func field(_ value: AMQPFieldValue) -> amqp_field_value_t {
        var field = amqp_field_value_t()
        switch value {
        case .string(let string):
            field.kind = FieldKind.utf8
            field.value.bytes = self.bytes(string)
        case .int(let int):
            field.kind = FieldKind.i64
            field.value.i64 = int
        case .bool(let bool):
            field.kind = FieldKind.boolean
            field.value.boolean = bool ? 1 : 0
        case .double(let double):
            field.kind = FieldKind.f64
            field.value.f64 = double
        case .timestamp(let seconds):
            field.kind = FieldKind.timestamp
            field.value.u64 = seconds
        case .bytes(let raw):
            field.kind = FieldKind.bytes
            field.value.bytes = self.bytes(raw)
        case .table(let table):
            field.kind = FieldKind.table
            field.value.table = self.table(table)
        case .array(let items):
            field.kind = FieldKind.array
            let entries = self.allocate(MemoryLayout<amqp_field_value_t>.stride * max(items.count, 1))
                .bindMemory(to: amqp_field_value_t.self, capacity: max(items.count, 1))
            for (index, item) in items.enumerated() { entries[index] = self.field(item) }
            field.value.array = amqp_array_t(num_entries: Int32(items.count), entries: entries)
        case .void:
            field.kind = FieldKind.void
        }
        return field
    }

    /// The C form of `properties`; valid while the arena lives.
    func properties(_ properties: AMQPProperties) -> amqp_basic_properties_t {
        var c = amqp_basic_properties_t()
        var flags: UInt32 = Flag.deliveryMode
        c.delivery_mode = properties.persistent ? 2 : 1
        if let value = properties.contentType {
            flags |= Flag.contentType
            c.content_type = self.bytes(value)
        }
        if let value = properties.messageID {
            flags |= Flag.messageID
            c.message_id = self.bytes(value)
        }
        if let value = properties.correlationID {
            flags |= Flag.correlationID
            c.correlation_id = self.bytes(value)
        }
        if let value = properties.replyTo {
            flags |= Flag.replyTo
            c.reply_to = self.bytes(value)
        }
        if let value = properties.type {
            flags |= Flag.type
            c.type = self.bytes(value)
        }
        if let value = properties.timestamp {
            flags |= Flag.timestamp
            c.timestamp = value
        }
        if let value = properties.expiration {
            flags |= Flag.expiration
            c.expiration = self.bytes(value)
        }
        if !properties.headers.isEmpty {
            flags |= Flag.headers
            c.headers = self.table(properties.headers)
        }
        c._flags = flags
        return c
    }
}

/// `AMQP_FIELD_KIND_*` as the `uint8_t` the field struct stores.
enum FieldKind {
    static let boolean = UInt8(AMQP_FIELD_KIND_BOOLEAN.rawValue)
    static let i8 = UInt8(AMQP_FIELD_KIND_I8.rawValue)
    static let u8 = UInt8(AMQP_FIELD_KIND_U8.rawValue)
    static let i16 = UInt8(AMQP_FIELD_KIND_I16.rawValue)
    static let u16 = UInt8(AMQP_FIELD_KIND_U16.rawValue)
    static let i32 = UInt8(AMQP_FIELD_KIND_I32.rawValue)
    static let u32 = UInt8(AMQP_FIELD_KIND_U32.rawValue)
    static let i64 = UInt8(AMQP_FIELD_KIND_I64.rawValue)
    static let u64 = UInt8(AMQP_FIELD_KIND_U64.rawValue)
    static let f32 = UInt8(AMQP_FIELD_KIND_F32.rawValue)
    static let f64 = UInt8(AMQP_FIELD_KIND_F64.rawValue)
    static let utf8 = UInt8(AMQP_FIELD_KIND_UTF8.rawValue)
    static let bytes = UInt8(AMQP_FIELD_KIND_BYTES.rawValue)
    static let array = UInt8(AMQP_FIELD_KIND_ARRAY.rawValue)
    static let table = UInt8(AMQP_FIELD_KIND_TABLE.rawValue)
    static let timestamp = UInt8(AMQP_FIELD_KIND_TIMESTAMP.rawValue)
    static let void = UInt8(AMQP_FIELD_KIND_VOID.rawValue)
}

/// `AMQP_BASIC_*_FLAG`.
enum Flag {
    static let contentType = UInt32(AMQP_BASIC_CONTENT_TYPE_FLAG)
    static let headers = UInt32(AMQP_BASIC_HEADERS_FLAG)
    static let deliveryMode = UInt32(AMQP_BASIC_DELIVERY_MODE_FLAG)
    static let correlationID = UInt32(AMQP_BASIC_CORRELATION_ID_FLAG)
    static let replyTo = UInt32(AMQP_BASIC_REPLY_TO_FLAG)
    static let expiration = UInt32(AMQP_BASIC_EXPIRATION_FLAG)
    static let messageID = UInt32(AMQP_BASIC_MESSAGE_ID_FLAG)
    static let timestamp = UInt32(AMQP_BASIC_TIMESTAMP_FLAG)
    static let type = UInt32(AMQP_BASIC_TYPE_FLAG)
}

extension amqp_bytes_t {
    var string: String {
        guard self.len > 0, let bytes = self.bytes else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: bytes, count: self.len), as: UTF8.self)
    }

    var data: Data {
        guard self.len > 0, let bytes = self.bytes else { return Data() }
        return Data(bytes: bytes, count: self.len)
    }

    var array: [UInt8] {
        guard self.len > 0, let bytes = self.bytes else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: self.len))
    }
}

extension AMQPFieldValue {
    /// How deep tables and arrays in a message's headers are read; deeper ones are `.void`. A
    /// producer's headers nested tens of thousands deep fit in one frame, and reading them by
    /// recursion without a bound would overflow the consuming thread's stack (a review in the
    /// forty-sixth session).
    static let maximumDepth = 16

    init(_ field: amqp_field_value_t, depth: Int = 0) {
        if depth >= Self.maximumDepth, field.kind == FieldKind.table || field.kind == FieldKind.array {
            self = .void
            return
        }
        switch field.kind {
        case FieldKind.utf8: self = .string(field.value.bytes.string)
        case FieldKind.bytes: self = .bytes(field.value.bytes.array)
        case FieldKind.boolean: self = .bool(field.value.boolean != 0)
        case FieldKind.i8: self = .int(Int64(field.value.i8))
        case FieldKind.u8: self = .int(Int64(field.value.u8))
        case FieldKind.i16: self = .int(Int64(field.value.i16))
        case FieldKind.u16: self = .int(Int64(field.value.u16))
        case FieldKind.i32: self = .int(Int64(field.value.i32))
        case FieldKind.u32: self = .int(Int64(field.value.u32))
        case FieldKind.i64: self = .int(field.value.i64)
        case FieldKind.u64: self = .int(Int64(truncatingIfNeeded: field.value.u64))
        case FieldKind.f32: self = .double(Double(field.value.f32))
        case FieldKind.f64: self = .double(field.value.f64)
        case FieldKind.timestamp: self = .timestamp(field.value.u64)
        case FieldKind.table: self = .table(Self.dictionary(field.value.table, depth: depth + 1))
        case FieldKind.array:
            let array = field.value.array
            var items: [AMQPFieldValue] = []
            for index in 0..<Int(array.num_entries) {
                items.append(AMQPFieldValue(array.entries[index], depth: depth + 1))
            }
            self = .array(items)
        default: self = .void
        }
    }

    static func dictionary(_ table: amqp_table_t, depth: Int = 0) -> [String: AMQPFieldValue] {
        var result: [String: AMQPFieldValue] = [:]
        for index in 0..<Int(table.num_entries) {
            let entry = table.entries[index]
            result[entry.key.string] = AMQPFieldValue(entry.value, depth: depth)
        }
        return result
    }
}

extension AMQPProperties {
    init(_ c: amqp_basic_properties_t) {
        let flags = c._flags
        self.init(contentType: nil)
        if flags & Flag.contentType != 0 { self.contentType = c.content_type.string }
        if flags & Flag.messageID != 0 { self.messageID = c.message_id.string }
        if flags & Flag.correlationID != 0 { self.correlationID = c.correlation_id.string }
        if flags & Flag.replyTo != 0 { self.replyTo = c.reply_to.string }
        if flags & Flag.type != 0 { self.type = c.type.string }
        if flags & Flag.timestamp != 0 { self.timestamp = c.timestamp }
        if flags & Flag.expiration != 0 { self.expiration = c.expiration.string }
        if flags & Flag.headers != 0 { self.headers = AMQPFieldValue.dictionary(c.headers) }
        self.persistent = flags & Flag.deliveryMode != 0 && c.delivery_mode == 2
    }
}
