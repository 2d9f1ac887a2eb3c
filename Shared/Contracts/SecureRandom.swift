import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Random bytes from the kernel's CSPRNG, read 4 KiB at a time from `/dev/urandom` and handed
/// out in order, each byte once.
///
/// `UInt8.random(in:)` makes one `getrandom(2)` system call per value: sixteen for a UUID, which
/// a profile of the messaging service showed as 9 % of its CPU. The bytes are the kernel's
/// either way; only the number of system calls changes. Where `/dev/urandom` cannot be read, it
/// falls back to the standard library's generator.
public enum SecureRandom {
    private static let chunk = 4096

    private struct Pool: ~Copyable {
        let descriptor: Int32 = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        var bytes = [UInt8](repeating: 0, count: SecureRandom.chunk)
        var next = SecureRandom.chunk

        mutating func refill() {
            var filled = 0
            if self.descriptor >= 0 {
                filled = self.bytes.withUnsafeMutableBytes { buffer in
                    var total = 0
                    while total < buffer.count {
                        let count = read(self.descriptor, buffer.baseAddress! + total, buffer.count - total)
                        if count > 0 {
                            total += count
                        } else if count < 0 && errno == EINTR {
                            continue
                        } else {
                            break
                        }
                    }
                    return total
                }
            }
            if filled < self.bytes.count {
                var generator = SystemRandomNumberGenerator()
                for index in filled..<self.bytes.count { self.bytes[index] = generator.next() }
            }
            self.next = 0
        }
    }

    private static let pool = Mutex(Pool())

    /// Fills `buffer` with random bytes.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard !buffer.isEmpty else { return }
        self.pool.withLock { pool in
            var written = 0
            while written < buffer.count {
                if pool.next == pool.bytes.count { pool.refill() }
                let count = min(buffer.count - written, pool.bytes.count - pool.next)
                pool.bytes.withUnsafeBytes { source in
                    (buffer.baseAddress! + written).copyMemory(from: source.baseAddress! + pool.next, byteCount: count)
                }
                // Handed out once: the bytes are not kept for anyone else to read.
                for index in pool.next..<(pool.next + count) { pool.bytes[index] = 0 }
                pool.next += count
                written += count
            }
        }
    }

    /// 16 random bytes.
    public static func uuidBytes() -> uuid_t {
        var value: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &value) { self.fill($0) }
        return value
    }
}

extension UUID {
    /// A random UUID (version 4), from ``SecureRandom``.
    public static func random() -> UUID {
        var bytes = SecureRandom.uuidBytes()
        bytes.6 = (bytes.6 & 0x0F) | 0x40  // version 4
        bytes.8 = (bytes.8 & 0x3F) | 0x80  // RFC 9562 variant
        return UUID(uuid: bytes)
    }
}
