import Foundation
import Glibc
import TestSupport

/// A TCP socket on 127.0.0.1 that listens and never accepts (unless asked, ``firstBytes(_:)``):
/// connections to it complete, and what they send fills the kernel's buffers and is never read.
final class SilentListener {
    let port: Int
    private let descriptor: Int32

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                bind(descriptor, address, length) == 0 && listen(descriptor, 16) == 0
                    && getsockname(descriptor, address, &length) == 0
            }
        }
        guard bound else {
            Glibc.close(descriptor)
            throw TestFailure("cannot listen on 127.0.0.1: errno \(errno)")
        }
        self.descriptor = descriptor
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// Accepts one connection and returns the first `count` bytes its client sends (fewer if it
    /// closes first), on a thread of its own: `accept` and `recv` block.
    func firstBytes(_ count: Int) async -> [UInt8] {
        let descriptor = self.descriptor
        return await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                let connection = accept(descriptor, nil, nil)
                guard connection >= 0 else { return continuation.resume(returning: []) }
                defer { Glibc.close(connection) }
                var bytes = [UInt8](repeating: 0, count: count)
                let read = recv(connection, &bytes, count, Int32(MSG_WAITALL))
                continuation.resume(returning: Array(bytes.prefix(max(0, read))))
            }
        }
    }

    func close() {
        Glibc.close(self.descriptor)
    }
}
