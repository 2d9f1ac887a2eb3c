import Testing

@testable import MessengerPostgres

/// ``HeldConnections``, the connections a database keeps between calls, with numbers for
/// connections. (`#expect` cannot call a mutating method: each result is taken first.)
@Suite("Connections kept between database calls")
struct HeldConnectionsTests {
    @Test("keeps up to its maximum, and lends the most recently used first")
    func keepsAndLends() {
        var held = HeldConnections<Int>(maximum: 2)
        let kept = [held.keep(1), held.keep(2), held.keep(3)]
        #expect(kept == [true, true, false], "a third goes back to the pool")
        #expect(held.count == 2)
        let lent = [held.lend(), held.lend(), held.lend()]
        #expect(lent == [2, 1, nil], "both lent: the next call leases from the pool")
        let givenBack = held.giveBack(1, reusable: true)
        let lentAgain = held.lend()
        #expect(givenBack && lentAgain == 1)
        #expect(held.count == 2)
    }

    @Test("a connection whose call failed or that closed is released, and frees its place")
    func unusableIsReleased() {
        var held = HeldConnections<Int>(maximum: 1)
        let steps = (held.keep(1), held.lend(), held.giveBack(1, reusable: false))
        #expect(steps == (true, 1, false))
        #expect(held.count == 0)
        let another = held.keep(2)
        #expect(another)
    }

    @Test("a look releases the idle connections no call used since the last look")
    func looksReleaseTheUnused() {
        var held = HeldConnections<Int>(maximum: 4)
        _ = (held.keep(1), held.keep(2))
        let first = held.look()
        #expect(first.isEmpty, "both were used since the last look")
        // 2 serves a call between the looks; 1 stays idle.
        _ = (held.lend(), held.giveBack(2, reusable: true))
        let second = held.look()
        #expect(second == [1])
        #expect(held.count == 1)
        // A connection lent during a look is not idle, so not released.
        let lent = held.lend()
        let third = held.look()
        #expect(lent == 2 && third.isEmpty)
        _ = held.giveBack(2, reusable: true)
        let (fourth, fifth) = (held.look(), held.look())
        #expect(fourth.isEmpty && fifth == [2])
        #expect(held.count == 0)
    }

    @Test("at shutdown every idle connection is released, a lent one once it comes back, and none is kept")
    func releasesAllAtShutdown() {
        var held = HeldConnections<Int>(maximum: 4)
        _ = (held.keep(1), held.keep(2))
        let lent = held.lend()
        let released = held.releaseAll()
        #expect(lent == 2 && released == [1])
        let after = (held.giveBack(2, reusable: true), held.keep(3), held.lend())
        #expect(after == (false, false, nil))
        #expect(held.count == 0)
    }
}
