import Glibc
import Testing
import ThreadedIO

/// ``SocketBreaker``: it shuts down the owner's socket, never another that took its number.
@Suite("Breaking a C handle's socket")
struct SocketBreakerTests {
    /// A connected pair of local sockets.
    private func socketPair() throws -> (Int32, Int32) {
        var pair: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0 else {
            throw SocketError(errno: errno)
        }
        return (pair[0], pair[1])
    }

    private struct SocketError: Error { var errno: Int32 }

    /// Whether `descriptor` can send a byte to `peer`, and `peer` reads it.
    private func carries(_ descriptor: Int32, to peer: Int32) -> Bool {
        var byte: UInt8 = 42
        guard send(descriptor, &byte, 1, Int32(MSG_NOSIGNAL)) == 1 else { return false }
        var received: UInt8 = 0
        return recv(peer, &received, 1, Int32(MSG_DONTWAIT)) == 1 && received == 42
    }

    @Test("breaking shuts the owner's socket down both ways")
    func breaksTheOwnersSocket() throws {
        let (owned, peer) = try self.socketPair()
        defer { _ = close(owned); _ = close(peer) }
        let breaker = SocketBreaker()
        breaker.set(owned)
        #expect(self.carries(owned, to: peer))
        breaker.breakSocket()
        var byte: UInt8 = 0
        #expect(recv(peer, &byte, 1, 0) == 0, "the peer sees the end of the stream")
        #expect(!self.carries(owned, to: peer))
        breaker.set(nil)
    }

    /// The library closes its socket by itself on a heartbeat or RPC timeout: the number can be
    /// the process's next socket before the owner clears it.
    @Test("a socket the library closed is broken, not the socket that took its number")
    func leavesAReusedNumberAlone() throws {
        let (owned, peer) = try self.socketPair()
        let breaker = SocketBreaker()
        breaker.set(owned)
        _ = close(owned)
        let (next, nextPeer) = try self.socketPair()
        defer { _ = close(next); _ = close(nextPeer); _ = close(peer) }
        // Most often `next` or `nextPeer` has the closed number now (the lowest free one), unless
        // another test opened a file in between: then this test is weaker, not wrong.
        breaker.breakSocket()
        #expect(self.carries(next, to: nextPeer))
        #expect(self.carries(nextPeer, to: next))
        var byte: UInt8 = 0
        #expect(recv(peer, &byte, 1, 0) == 0, "the closed socket itself was shut down")
        breaker.set(nil)
    }

    @Test("a stall is broken once, on the owner's socket")
    func breaksAStallOnce() throws {
        let (owned, peer) = try self.socketPair()
        defer { _ = close(owned); _ = close(peer) }
        let breaker = SocketBreaker()
        breaker.set(owned)
        let start = ContinuousClock.now
        breaker.working(since: start)
        #expect(!breaker.breakIfStalled(longerThan: .seconds(10), now: start + .seconds(1)))
        #expect(self.carries(owned, to: peer))
        #expect(breaker.breakIfStalled(longerThan: .seconds(10), now: start + .seconds(11)))
        #expect(!breaker.breakIfStalled(longerThan: .seconds(10), now: start + .seconds(12)))
        var byte: UInt8 = 0
        #expect(recv(peer, &byte, 1, 0) == 0)
        breaker.set(nil)
    }
}
