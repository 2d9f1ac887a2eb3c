import Foundation
import MessengerContracts
import Testing

@testable import MediaService

/// The uploads an `add_attachments` names: each once, in order, 1 to 20 of them.
@Suite("add_attachments' list of uploads")
struct AttachmentListTests {
    @Test("repeats are named once, in the order first listed")
    func repeatsOnce() throws {
        let (a, b) = (EntityID(UUID()), EntityID(UUID()))
        #expect(try Attachments.uploadIDs([a, b, a, b, a]) == [a.uuid, b.uuid])
        let twenty = (0..<20).map { _ in EntityID(UUID()) }
        #expect(try Attachments.uploadIDs(twenty + twenty) == twenty.map(\.uuid))
    }

    @Test("none, or more than 20 different ones, is invalid_argument")
    func bounds() {
        #expect(throws: ServiceError.self) { try Attachments.uploadIDs([]) }
        #expect(throws: ServiceError.self) { try Attachments.uploadIDs((0..<21).map { _ in EntityID(UUID()) }) }
    }

    @Test("a list of 25,000 ids is refused at the 21st, not after comparing each with those before it")
    func longList() {
        // Quadratic, this took seconds of a core (a review in the forty-ninth session); the test
        // asserts the refusal, and the suite's run time shows the rest.
        let listed = (0..<25_000).map { _ in EntityID(UUID()) }
        #expect(throws: ServiceError.self) { try Attachments.uploadIDs(listed) }
    }
}
