import CHiredis
import Glibc

/// A connected hiredis context: the C calls both Redis drivers share. Used from one thread only.
final class HiredisContext {
    let context: UnsafeMutablePointer<redisContext>

    /// Connects, authenticates when a password is set, and applies the read/write timeout.
    init(_ configuration: RedisConfiguration) throws {
        let timeout = timeval(configuration.timeout)
        guard let context = redisConnectWithTimeout(configuration.host, Int32(configuration.port), timeout) else {
            throw RedisError(.connection, "out of memory")
        }
        self.context = context
        if context.pointee.err != 0 {
            throw RedisError(.connection, "connect to \(configuration.host):\(configuration.port): \(self.errorText)")
        }
        _ = redisSetTimeout(context, timeout)
        _ = redisEnableKeepAlive(context)
        if let password = configuration.password, !password.isEmpty {
            try self.append(["AUTH", password].map { Array($0.utf8) })
            if case .failure(let error) = try self.readReply() { throw error }
        }
    }

    deinit {
        redisFree(self.context)
    }

    var fileDescriptor: Int32 { self.context.pointee.fd }

    var errorText: String {
        withUnsafeBytes(of: self.context.pointee.errstr) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// Queues a command in the output buffer (sent by the next read, or by `flush`).
    func append(_ arguments: [[UInt8]]) throws {
        let count = arguments.count
        let pointers = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: count)
        let lengths = UnsafeMutablePointer<Int>.allocate(capacity: count)
        var buffers: [UnsafeMutableRawPointer] = []
        defer {
            buffers.forEach { $0.deallocate() }
            pointers.deallocate()
            lengths.deallocate()
        }
        for (index, argument) in arguments.enumerated() {
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(argument.count, 1), alignment: 1)
            argument.withUnsafeBytes { if let base = $0.baseAddress { buffer.copyMemory(from: base, byteCount: $0.count) } }
            buffers.append(buffer)
            pointers[index] = UnsafePointer(buffer.assumingMemoryBound(to: CChar.self))
            lengths[index] = argument.count
        }
        guard redisAppendCommandArgv(self.context, Int32(count), pointers, lengths) == REDIS_OK else {
            throw RedisError(.connection, self.errorText)
        }
    }

    /// Writes the whole output buffer.
    func flush() throws {
        var done: Int32 = 0
        while done == 0 {
            guard redisBufferWrite(self.context, &done) == REDIS_OK else { throw RedisError(.connection, self.errorText) }
        }
    }

    /// Blocks for the next reply (flushing pending commands first). An error reply is returned
    /// as `.failure`; a broken connection throws.
    func readReply() throws -> Result<RedisValue, RedisError> {
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(self.context, &raw) == REDIS_OK, let raw else {
            throw RedisError(.connection, self.errorText.isEmpty ? "connection closed" : self.errorText)
        }
        return Self.take(raw)
    }

    /// True when the socket has something to read (or has closed), without waiting.
    var isReadable: Bool {
        var descriptor = pollfd(fd: self.fileDescriptor, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) > 0
    }

    /// Reads what the socket has (it must be readable) into the reader.
    func readAvailable() throws {
        guard redisBufferRead(self.context) == REDIS_OK else {
            throw RedisError(.connection, self.errorText.isEmpty ? "connection closed" : self.errorText)
        }
    }

    /// The next complete reply already read, without blocking.
    func bufferedReply() throws -> Result<RedisValue, RedisError>? {
        var raw: UnsafeMutableRawPointer?
        guard redisGetReplyFromReader(self.context, &raw) == REDIS_OK else {
            throw RedisError(.connection, "protocol error: \(self.errorText)")
        }
        guard let raw else { return nil }
        return Self.take(raw)
    }

    /// Converts a reply and frees it.
    private static func take(_ raw: UnsafeMutableRawPointer) -> Result<RedisValue, RedisError> {
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(raw) }
        if reply.pointee.type == REDIS_REPLY_ERROR {
            return .failure(RedisError(.server, Self.bytes(reply.pointee).map { String(decoding: $0, as: UTF8.self) } ?? ""))
        }
        return .success(Self.value(reply.pointee))
    }

    private static func bytes(_ reply: redisReply) -> [UInt8]? {
        guard let str = reply.str else { return nil }
        return Array(UnsafeRawBufferPointer(start: str, count: reply.len))
    }

    private static func value(_ reply: redisReply) -> RedisValue {
        switch reply.type {
        case REDIS_REPLY_STRING: return .string(Self.bytes(reply) ?? [])
        case REDIS_REPLY_STATUS, REDIS_REPLY_ERROR: return .status(String(decoding: Self.bytes(reply) ?? [], as: UTF8.self))
        case REDIS_REPLY_INTEGER: return .integer(reply.integer)
        case REDIS_REPLY_ARRAY:
            var items: [RedisValue] = []
            items.reserveCapacity(reply.elements)
            for index in 0..<reply.elements {
                if let element = reply.element[index] { items.append(Self.value(element.pointee)) }
            }
            return .array(items)
        default: return .null
        }
    }
}

extension timeval {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.init(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}
