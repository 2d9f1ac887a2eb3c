import Testing

@testable import SocketIOServer

@Suite("Attachment budget")
struct AttachmentBudgetTests {
    @Test("reservations fit under the limit, one that does not takes nothing, releases give room back")
    func reserveAndRelease() {
        let budget = AttachmentBudget(limit: 100)
        #expect(budget.reserve(60))
        #expect(budget.reserve(40))
        #expect(!budget.reserve(1))
        #expect(budget.inUse == 100)
        budget.release(40)
        #expect(!budget.reserve(41))
        #expect(budget.reserve(40))
        budget.release(100)
        budget.release(0)
        #expect(budget.inUse == 0)
    }
}
