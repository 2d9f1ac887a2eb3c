import MessengerContracts
import Testing

@testable import SocketGateway

@Suite("Upload slots")
struct UploadSlotsTests {
    @Test("a user holds at most their slots, the gateway at most its own, and a slot given back is free again")
    func slots() throws {
        let slots = UploadSlots(perUser: 2, inAll: 3)
        try slots.take(for: "a")
        try slots.take(for: "a")
        #expect(throws: ServiceError.rateLimited("at most 2 uploads at once", retryAfter: 1)) { try slots.take(for: "a") }
        try slots.take(for: "b")
        #expect(throws: ServiceError.unavailable("too many uploads at once", retryAfter: 1)) { try slots.take(for: "c") }
        slots.give(back: "a")
        try slots.take(for: "c")
        #expect(throws: ServiceError.self) { try slots.take(for: "a") }
        slots.give(back: "b")
        try slots.take(for: "a")
    }
}
