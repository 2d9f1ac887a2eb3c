import Testing

@testable import SocketIOServer

@Suite("Attachment budget")
struct HeldBytesBudgetTests {
    @Test("reservations fit under the limit, one that does not takes nothing, releases give room back")
    func reserveAndRelease() {
        let budget = HeldBytesBudget(limit: 100, userShare: 100, meter: "test_bytes_held")
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
        let budget = HeldBytesBudget(limit: 100, userShare: 40, meter: "test_bytes_held")
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
}
