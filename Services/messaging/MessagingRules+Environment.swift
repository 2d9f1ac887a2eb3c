import MessengerContracts
import MessengerServiceKit

extension MessagingRules {
    /// The contract's limits as this deployment sets them, the contract's values by default:
    /// `MESSAGE_BODY_MAX_LENGTH`, `CLIENT_MESSAGE_ID_MAX_LENGTH`, `GROUP_TITLE_MAX_LENGTH`,
    /// `GROUP_MAX_MEMBERS`, `DELETE_MESSAGE_MAX_IDS`. Each may be lowered to 1 (a group to 2),
    /// or raised to about four times its default, the most the bounds sized on the defaults
    /// (the pushes of a group's largest events, a page of messages) were measured for
    /// (docs/messaging.md, "Limits").
    init(environment: ServiceEnvironment) throws {
        self.init()
        self.maximumBodyLength = try environment.int(
            "MESSAGE_BODY_MAX_LENGTH", default: self.maximumBodyLength, in: 1...16_000)
        self.maximumClientMessageIDLength = try environment.int(
            "CLIENT_MESSAGE_ID_MAX_LENGTH", default: self.maximumClientMessageIDLength, in: 1...255)
        self.maximumTitleLength = try environment.int("GROUP_TITLE_MAX_LENGTH", default: self.maximumTitleLength, in: 1...512)
        self.maximumGroupSize = try environment.int("GROUP_MAX_MEMBERS", default: self.maximumGroupSize, in: 2...1_000)
        self.maximumDeleteBatch = try environment.int("DELETE_MESSAGE_MAX_IDS", default: self.maximumDeleteBatch, in: 1...400)
    }
}
