import Foundation
import Glibc
import TestSupport

/// A TCP socket on 127.0.0.1 that listens and never accepts (unless asked, ``firstBytes(_:)``):
/// connections to it complete, and what they send fills the kernel's buffers and is never read.
final class SilentListener: Sendable {
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

    /// Accepts `count` connections one after the other on a thread of its own, and runs
    /// `script` with each one's index and descriptor (closed after it); returns when all ran.
    func serve(_ count: Int, _ script: @escaping @Sendable (_ index: Int, _ connection: Int32) -> Void) async {
        let descriptor = self.descriptor
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                for index in 0..<count {
                    let connection = accept(descriptor, nil, nil)
                    guard connection >= 0 else { break }
                    var timeout = timeval(tv_sec: 2, tv_usec: 0)
                    setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                    script(index, connection)
                    Glibc.close(connection)
                }
                continuation.resume()
            }
        }
    }

    /// Accepts connections and closes each at once, for `duration`; returns how many came.
    func acceptAndClose(for duration: Duration) async -> Int {
        let descriptor = self.descriptor
        return await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
                setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                let end = ContinuousClock.now + duration
                var accepted = 0
                while ContinuousClock.now < end {
                    let connection = accept(descriptor, nil, nil)
                    guard connection >= 0 else { continue }
                    accepted += 1
                    Glibc.close(connection)
                }
                continuation.resume(returning: accepted)
            }
        }
    }

    /// What `connection` sends until it has sent `marker` (or closes, or is silent for 2 s).
    static func read(_ connection: Int32, until marker: String) -> String {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !String(decoding: received, as: UTF8.self).contains(marker) {
            let count = recv(connection, &buffer, buffer.count, 0)
            guard count > 0 else { break }
            received += buffer.prefix(count)
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// Writes `text` to `connection`.
    static func write(_ connection: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, 0) }
    }

    func close() {
        Glibc.close(self.descriptor)
    }
}
