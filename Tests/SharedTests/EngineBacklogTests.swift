import NIOCore
import Testing

@testable import SocketIOServer

/// When the bytes waiting for a client close its session (``EngineBacklog``).
@Suite("Engine backlog")
struct EngineBacklogTests {
    let bound = EngineBacklog(limit: 4 << 20)

    @Test("under the limit a session goes on, however long its client made no progress")
    func underTheLimit() {
        #expect(self.bound.problem(bytes: 4 << 20, sinceProgress: .seconds(3600)) == nil)
    }

    @Test("past the limit a client that makes progress goes on; one that made none for 10 s is closed")
    func pastTheLimit() {
        #expect(self.bound.problem(bytes: 9 << 20, sinceProgress: .seconds(2)) == nil)
        #expect(self.bound.problem(bytes: 9 << 20, sinceProgress: .seconds(10)) == nil)
        #expect(self.bound.problem(bytes: 9 << 20, sinceProgress: .seconds(11)) == .doesNotRead)
    }

    @Test("past eight times the limit a session is closed at once")
    func pastTheHardLimit() {
        #expect(self.bound.problem(bytes: 32 << 20, sinceProgress: .zero) == nil)
        #expect(self.bound.problem(bytes: (32 << 20) + 1, sinceProgress: .zero) == .readsTooSlowly)
    }
}
