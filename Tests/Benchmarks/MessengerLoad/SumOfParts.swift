/// The servers' own work for one message to a conversation of `members`, as the ceilings price
/// it: on one machine, each part's cost at the rate that server reached alone adds up.
///
/// - 3 PostgreSQL commits: messaging's write, the outbox relay's delete and delivery's record
///   (receipts are recorded in batches and not counted).
/// - 1 + members + 2 × recipients confirmed persistent publishes: the event, a push to each
///   member (the sender's own sockets hear it too), and each recipient's receipt and its push
///   to the sender.
/// - members Redis PUBLISHes: the pushes, one per member's room.
///
/// A DM (2 members) is 3 commits, 5 publishes and 2 PUBLISHes; a group of 10 is 3, 29 and 10.
///
/// The group's figure prices its work as the DM's formula has since the first run, so that the
/// two stay comparable and earlier DM ceilings keep their meaning: a receipt costs a publish
/// per message, though an ack's receipts travel together (which prices a group lower than it
/// is), and a receipt's push is not counted as a Redis PUBLISH (which prices it a little
/// higher, about 2 % for a group of 10).
struct SumOfParts: Equatable {
    var commits: Int
    var publishes: Int
    var redisPublishes: Int
}

extension SumOfParts {
    init(members: Int) {
        let recipients = max(members - 1, 0)
        self.commits = 3
        self.publishes = 1 + members + 2 * recipients
        self.redisPublishes = members
    }

    /// Messages a second the three servers carry together for this work; 0 when a rate is not positive.
    func messagesPerSecond(rabbitmq: Double, postgres: Double, redis: Double) -> Double {
        guard rabbitmq > 0, postgres > 0, redis > 0 else { return 0 }
        return 1 / (Double(self.commits) / postgres + Double(self.publishes) / rabbitmq + Double(self.redisPublishes) / redis)
    }

    /// How the run's report explains both figures.
    static func note(groupSize: Int) -> String {
        let dm = SumOfParts(members: 2)
        let group = SumOfParts(members: groupSize)
        return
            "1 / (commits / PostgreSQL + publishes / RabbitMQ + PUBLISHes / Redis), on one machine: a DM costs \(dm.commits) commits (messaging's insert, the outbox relay's delete, delivery's insert), \(dm.publishes) confirmed persistent publishes (the event, two pushes, the delivery receipt and its push) and \(dm.redisPublishes) Redis PUBLISHes; a message to a group of \(groupSize) costs \(group.commits) commits, \(group.publishes) publishes (the event, \(groupSize) pushes, \(groupSize - 1) receipts and their pushes) and \(group.redisPublishes) PUBLISHes. The DM scenario's ratio is to the first figure, the group scenario's to the second"
    }
}
