import Synchronization
import Testing

@testable import SocketIOServer

@Suite("Attachment budget")
struct HeldBytesBudgetTests {
    @Test("reservations fit under the limit, one that does not takes nothing, releases give room back")
    func reserveAndRelease() {
        let budget = HeldBytesBudget(limit: 100, userShare: 100, metrics: "test")
        #expect(budget.reserve(60, for: "a") == .reserved)
        #expect(budget.reserve(40, for: "b") == .reserved)
        #expect(budget.reserve(1, for: "c") == .overLimit)
        #expect(budget.inUse == 100)
        budget.release(40, for: "b")
        #expect(budget.reserve(41, for: "b") == .overLimit)
        #expect(budget.reserve(40, for: "b") == .reserved)
        budget.release(60, for: "a")
        budget.release(40, for: "b")
        budget.release(0, for: "b")
        #expect(budget.inUse == 0)
    }

    @Test("one user holds no more than a share, and what they hold leaves room for the others")
    func userShare() {
        let budget = HeldBytesBudget(limit: 100, userShare: 40, metrics: "test")
        #expect(budget.reserve(30, for: "a") == .reserved)
        #expect(budget.reserve(11, for: "a") == .overUserShare)
        #expect(budget.reserve(10, for: "a") == .reserved)
        #expect(budget.inUse(by: "a") == 40)
        #expect(budget.reserve(40, for: "b") == .reserved)
        #expect(budget.reserve(20, for: "c") == .reserved)
        #expect(budget.reserve(1, for: "d") == .overLimit)
        #expect(budget.inUse(by: "d") == 0)
        budget.release(AttachmentHold(user: "a", bytes: 40))
        budget.release(nil)
        #expect(budget.inUse(by: "a") == 0)
        #expect(budget.reserve(40, for: "a") == .reserved)
        #expect(budget.inUse == 100)
    }

    /// Counts the closes a holder was asked for.
    final class Closes: Sendable {
        private let count = Mutex(0)
        var value: Int { self.count.withLock { $0 } }

        func holder(_ budget: HeldBytesBudget) -> UnfinishedHolder {
            UnfinishedHolder(id: budget.makeHolderID()) { self.count.withLock { $0 += 1 } }
        }
    }

    @Test("a full budget takes back the unfinished packets of the user holding the most, for one holding less")
    func evictsTheBiggestHolder() {
        let budget = HeldBytesBudget(limit: 100, userShare: 40, metrics: "test")
        let a = Closes(), b = Closes(), d = Closes()
        let holderA = a.holder(budget)
        #expect(budget.reserve(25, for: "a", holder: holderA) == .reserved)
        #expect(budget.reserve(15, for: "a", holder: holderA) == .reserved)
        let holderB1 = b.holder(budget), holderB2 = b.holder(budget)
        #expect(budget.reserve(20, for: "b", holder: holderB1) == .reserved)
        #expect(budget.reserve(15, for: "b", holder: holderB2) == .reserved)
        #expect(budget.reserve(20, for: "c") == .reserved)
        #expect(budget.inUse == 95)
        #expect(budget.reserve(10, for: "d", holder: d.holder(budget)) == .reserved)
        #expect(a.value == 1 && b.value == 0 && d.value == 0)
        #expect(budget.inUse == 65)
        #expect(budget.inUse(by: "a") == 0)
        // The evicted connection learns it on its next attachment or at its packet's end, once.
        #expect(budget.reserve(1, for: "a", holder: holderA) == .evicted)
        #expect(budget.complete(holderA.id) == .evicted)
        #expect(budget.complete(holderA.id) == .held(nil))
        #expect(budget.complete(holderB1.id) == .held(AttachmentHold(user: "b", bytes: 20)))
        #expect(budget.abandon(holderB2.id) == false)
        #expect(budget.inUse(by: "b") == 20)
        #expect(budget.inUse == 50)
    }

    @Test("nobody is evicted for a user who would then hold as much as they do, nor for finished packets")
    func evictsOnlyForSmallerHolders() {
        let budget = HeldBytesBudget(limit: 100, userShare: 60, metrics: "test")
        let a = Closes(), b = Closes()
        #expect(budget.reserve(45, for: "a", holder: a.holder(budget)) == .reserved)
        #expect(budget.reserve(55, for: "b") == .reserved)
        #expect(budget.reserve(1, for: "b", holder: b.holder(budget)) == .overLimit)
        #expect(a.value == 0)
        let holderB = b.holder(budget)
        #expect(budget.reserve(1, for: "c", holder: holderB) == .reserved)
        #expect(a.value == 1)
        #expect(budget.reserve(44, for: "c", holder: holderB) == .reserved)
        #expect(budget.reserve(1, for: "d", holder: b.holder(budget)) == .reserved)
        #expect(budget.abandon(holderB.id) == true)
        // b's 55 belong to a packet that is whole: they stay, and so 45 more do not fit.
        #expect(budget.reserve(45, for: "e", holder: b.holder(budget)) == .overLimit)
        #expect(budget.inUse == 56)
    }

    @Test("as many users are evicted as it takes, each holding more than the one asking")
    func evictsUntilItFits() {
        let budget = HeldBytesBudget(limit: 100, userShare: 40, metrics: "test")
        let a = Closes(), b = Closes()
        #expect(budget.reserve(20, for: "a", holder: a.holder(budget)) == .reserved)
        #expect(budget.reserve(15, for: "a") == .reserved)
        #expect(budget.reserve(20, for: "b", holder: b.holder(budget)) == .reserved)
        #expect(budget.reserve(15, for: "b") == .reserved)
        #expect(budget.reserve(30, for: "c") == .reserved)
        #expect(budget.reserve(30, for: "d") == .reserved)
        #expect(a.value == 1 && b.value == 1)
        #expect(budget.inUse == 90)
    }

    @Test("nobody is evicted when taking back every eligible unfinished packet would not make room")
    func evictsNobodyForNothing() {
        let budget = HeldBytesBudget(limit: 100, userShare: 50, metrics: "test")
        let a = Closes(), b = Closes()
        // a and b hold mostly finished packets: 40 each, 5 of it unfinished.
        #expect(budget.reserve(35, for: "a") == .reserved)
        #expect(budget.reserve(5, for: "a", holder: a.holder(budget)) == .reserved)
        #expect(budget.reserve(35, for: "b") == .reserved)
        #expect(budget.reserve(5, for: "b", holder: b.holder(budget)) == .reserved)
        #expect(budget.reserve(15, for: "c") == .reserved)
        #expect(budget.reserve(20, for: "d", holder: Closes().holder(budget)) == .overLimit)
        #expect(a.value == 0 && b.value == 0)
        #expect(budget.inUse == 95)
    }
}
