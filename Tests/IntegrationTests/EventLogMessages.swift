import Foundation
import MessengerContracts

@testable import DeliveryService

extension EventLog {
    /// Records `count` messages of one sender to `recipient` (each with a `body` of
    /// `bodyLength` characters); their seqs, in order.
    func recordMessages(_ count: Int, to recipient: UUID, bodyLength: Int = 0) async throws -> [Int64] {
        let (sender, thread) = (UUID(), UUID())
        let body = String(repeating: "x", count: bodyLength)
        let events = (1...count).map { seq in
            IncomingEvent(
                id: UUID(), occurredAt: Date(), actor: sender, name: "MESSAGE_CREATED", threadID: thread,
                recipients: [recipient],
                data: .object([
                    "message": .object([
                        "id": .string(EntityID(UUID()).description), "seq": .number(Double(seq)),
                        "senderId": .string(EntityID(sender).description), "body": .string(body),
                    ])
                ]))
        }
        return try await self.record(events).map(\.seq)
    }
}
