import Testing

@testable import SocketGateway

@Suite("The line of replays")
struct ReplayLineTests {
    @Test("replays start up to the gateway's bound; the others start in order as replays end")
    func gatewayBound() {
        var line = ReplayLine<Int>(maximumRunning: 2, maximumPerUser: 2)
        let started = [(1, "a"), (2, "b"), (3, "c"), (4, "d")].map { line.arrive($0.0, user: $0.1) }
        #expect(started == [true, true, false, false])
        let next = ["a", "b", "c", "d"].map { line.finish(user: $0).map(\.entry) }
        #expect(next == [[3], [4], [], []])
        #expect(line.running == 0 && line.waitingCount == 0)
    }

    @Test("in a busy line one user's replays hold at most their share: other users' go past theirs")
    func userBound() {
        var line = ReplayLine<String>(maximumRunning: 4, maximumPerUser: 2)
        // Half the places are taken after a2: the gateway has room for a3 and a4, the user has
        // not; b1 goes past them.
        let started = [("a1", "a"), ("a2", "a"), ("a3", "a"), ("a4", "a"), ("b1", "b")].map {
            line.arrive($0.0, user: $0.1)
        }
        #expect(started == [true, true, false, false, true])
        #expect(line.running == 3 && line.waitingCount == 2)
        // Another user's replay ending starts none of the user's; one of the user's starts the
        // user's next, in order.
        let next = ["b", "a"].map { line.finish(user: $0).map(\.entry) }
        #expect(next == [[], ["a3"]])
        #expect(line.running == 2 && line.waitingCount == 1)
    }

    @Test("a replay whose socket left while it waited is forgotten, and the line goes on without it")
    func leftWhileWaiting() {
        var line = ReplayLine<Int>(maximumRunning: 1, maximumPerUser: 1)
        let started = [(1, "a"), (2, "b"), (3, "c")].map { line.arrive($0.0, user: $0.1) }
        #expect(started == [true, false, false])
        line.removeWaiting { $0 == 2 }
        #expect(line.waitingCount == 1)
        #expect(line.finish(user: "a").map(\.entry) == [3])
    }

    @Test("in a quiet line a user's replays start however many of theirs run")
    func quietLine() {
        var line = ReplayLine<String>(maximumRunning: 8, maximumPerUser: 2)
        let started = ["a1", "a2", "a3", "a4", "a5"].map { line.arrive($0, user: "a") } + [line.arrive("b1", user: "b")]
        #expect(started == [true, true, true, true, false, true])
    }

    @Test("with the gateway full, the first waiting replay whose user has room starts")
    func firstEligibleStarts() {
        var line = ReplayLine<String>(maximumRunning: 2, maximumPerUser: 1)
        let started = [("a1", "a"), ("b1", "b"), ("a2", "a"), ("c1", "c")].map { line.arrive($0.0, user: $0.1) }
        #expect(started == [true, true, false, false])
        // b's end frees a place of the gateway; a still replays, so c1 goes before a2.
        let next = ["b", "a", "c", "a"].map { line.finish(user: $0).map(\.entry) }
        #expect(next == [["c1"], ["a2"], [], []])
        #expect(line.running == 0)
    }
}
