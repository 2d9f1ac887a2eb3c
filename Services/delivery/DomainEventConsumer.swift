import Foundation
import Logging
import MessengerAMQP
import MessengerContracts
import MessengerPostgres
import Metrics
import PostgresNIO
import ServiceLifecycle
import ThreadedIO

/// Consumes the domain events on `delivery.events` in batches: records each batch in one
/// transaction (``EventLog/record(_:)``), pushes the new deliveries to the gateways, and hands
/// the events to ``FirstRetryChecks``, which acks them once their retry check is scheduled; a
/// crash anywhere before the ack redelivers the events, and the log's inbox turns the
/// redelivery into a push of what is still pending. A message that is not a known domain event
/// is dead-lettered with a log line.
///
/// Batches are recorded one after the other (each takes the seqs after the last), but a batch's
/// pushes are confirmed by the broker while the next batch is recorded: the pushes go out in
/// the order of the batches all the same, and the events of a batch are handed on only once its
/// pushes are confirmed. The consumer's prefetch bounds the batches in flight.
struct DomainEventConsumer: Service {
    let amqp: AMQPConnection
    let log: EventLog
    let publisher: PushPublisher
    let retryChecks: FirstRetryChecks
    let prefetch: UInt16
    /// The pushes waiting for the broker's confirm, at most (by default 64 MiB: about 50,000
    /// DMs' pushes, so that only the large groups' events ever wait).
    let pushBudget: PushBudget
    let logger: Logger

    /// A recorded batch whose pushes are on their way.
    private struct PushedBatch: Sendable {
        var confirms: PendingConfirms
        var events: [EntityID]
        var deliveries: [AMQPDelivery]
        /// What it took of the ``PushBudget``, given back once its pushes are confirmed.
        var pushBytes = 0
    }

    /// A domain event message and the events it carries.
    typealias Part = (delivery: AMQPDelivery, events: [IncomingEvent])

    /// At graceful shutdown the batch under way is recorded and handed on, its domain events
    /// acked, and the rest given back in place (``AMQPConsumer/runInOrderUntilShutdown(_:)``),
    /// so that the replica that takes over records them in order. Until the fortieth session
    /// the consumer cancelled and recorded what it had received while the next replica was
    /// already recording what came after.
    ///
    /// Messages that keep failing with none behind them recorded (``isolate(_:behind:)``) are never
    /// given back to the queue outside shutdown: they stay at its head, and are tried again a
    /// second later with what arrived behind them. Given back, they came again behind the
    /// messages the consumer had received already, which then took the seqs before theirs
    /// (until the fiftieth session).
    func run() async throws {
        let consumer = self.amqp.consume(queue: DeliveryTopology.events, prefetch: self.prefetch)
        let (pushed, pushedContinuation) = AsyncStream.makeStream(of: PushedBatch.self)
        try await consumer.runInOrderUntilShutdown { handover in
            await withDiscardingTaskGroup { group in
                group.addTask {
                    for await batch in pushed { await self.handOn(batch) }
                }
                var batches = consumer.batches(maximum: Int(self.prefetch)).makeAsyncIterator()
                var kept: [Part] = []
                while true {
                    let batch: [AMQPDelivery]
                    if kept.isEmpty {
                        guard let next = await batches.next() else { break }
                        batch = next
                    } else {
                        try? await Task.sleep(for: .seconds(1))
                        // Held past the connection they came on (the broker's consumer timeout, a
                        // reconnect), they are back in the queue, ahead of what arrives next.
                        kept.removeAll { !$0.delivery.canBeSettled }
                        batch = batches.arrived(maximum: Int(self.prefetch) - kept.count)
                    }
                    guard handover.begin() else { break }
                    var chunks = Self.chunks(kept + self.decode(batch), bytes: self.pushBudget.limit / 4)[...]
                    kept = []
                    while let chunk = chunks.popFirst() {
                        // The connection was lost since the round began: what is left of it comes
                        // again, in its place (a review of the first version).
                        guard chunk.parts.allSatisfy(\.delivery.canBeSettled) else { break }
                        await withGracefulShutdownHandler {
                            await self.pushBudget.take(chunk.pushBytes)
                        } onGracefulShutdown: {
                            self.pushBudget.stopBounding()
                        }
                        let processed = await self.process(chunk.parts, behind: chunks)
                        if var pushed = processed.pushed {
                            pushed.pushBytes = chunk.pushBytes
                            if case .terminated = pushedContinuation.yield(pushed) {
                                // Cancelled: nothing hands it on, and its messages come again.
                                self.pushBudget.give(chunk.pushBytes)
                            }
                        } else {
                            self.pushBudget.give(chunk.pushBytes)
                        }
                        // Nothing after messages that stay or go back is recorded before them: the
                        // batch's later chunks stay with them, or go back too, in place (a review
                        // of the chunks, in the session that made them).
                        if processed.gaveBack {
                            if !chunks.isEmpty { await chunks.flatMap(\.parts).map(\.delivery).requeueAfterFailure() }
                            break
                        }
                        if !processed.kept.isEmpty {
                            kept = processed.kept + chunks.flatMap(\.parts)
                            break
                        }
                    }
                    guard handover.end() else { break }
                }
                pushedContinuation.finish()
            }
            // Every batch taken is handed on; their retry check goes now, and their acks with it.
            await self.retryChecks.flush()
        }
    }

    /// The domain events of a batch's messages; one that is not a domain event is
    /// dead-lettered.
    private func decode(_ batch: [AMQPDelivery]) -> [Part] {
        var parts: [Part] = []
        // A copy from a connection since lost comes again, in its place: handled now, it could
        // be recorded before messages ahead of it that come again too.
        for delivery in batch where delivery.canBeSettled {
            guard let decoded = Self.events(in: delivery) else {
                self.logger.error(
                    "poison domain event dead-lettered",
                    metadata: [
                        "message_id": "\(delivery.properties.messageID ?? "-")", "routing_key": "\(delivery.routingKey)",
                    ])
                delivery.reject(requeue: false)
                continue
            }
            parts.append((delivery, decoded))
        }
        return parts
    }

    /// A batch's messages in order, cut where their pushes would pass `bytes` (a message whose
    /// pushes alone pass it is a chunk of its own): each chunk is recorded and pushed in turn,
    /// within the ``PushBudget``. A batch of DMs or small groups is one chunk.
    static func chunks(
        _ parts: [Part], bytes limit: Int
    ) -> [(parts: [Part], pushBytes: Int)] {
        var chunks: [(parts: [Part], pushBytes: Int)] = []
        for part in parts {
            let bytes = Self.pushBytes(of: part.events, carriedIn: part.delivery.body.count)
            if let last = chunks.last, last.pushBytes + bytes <= limit {
                chunks[chunks.count - 1].parts.append(part)
                chunks[chunks.count - 1].pushBytes += bytes
            } else {
                chunks.append(([part], bytes))
            }
        }
        return chunks
    }

    /// About what the pushes of `events`, which came in a message of `bodyBytes`, hold: each
    /// event's share of the message (its data, mostly) and a push's own fields, once per
    /// recipient.
    static func pushBytes(of events: [IncomingEvent], carriedIn bodyBytes: Int) -> Int {
        guard !events.isEmpty else { return 0 }
        let perEvent = bodyBytes / events.count + 320
        return events.reduce(0) { $0 + max(1, $1.recipients.count) * perEvent }
    }

    /// What came of recording a chunk: the batch to hand on (none when nothing was recorded),
    /// the messages that stay at the head of the queue unrecorded, and whether messages were
    /// given back to the queue unrecorded (at shutdown).
    private struct Processed {
        var pushed: PushedBatch?
        var kept: [Part] = []
        var gaveBack = false
    }

    /// Records a chunk of a batch and starts pushing its deliveries; `behind`: the batch's later
    /// chunks.
    private func process(_ parts: [Part], behind: ArraySlice<(parts: [Part], pushBytes: Int)>) async -> Processed {
        let events = parts.flatMap(\.events)
        guard !events.isEmpty else { return Processed() }
        // The batch is recorded again in place, before anything after it. Given back to the
        // queue, its events came again behind the next batch, which the consumer had received
        // already and which then took the seqs before theirs (a delete's erasure could run
        // before the create it erases was recorded; the fortieth session's review). Only
        // shutdown gives them back.
        let outcome = await self.retrying(events.count, tries: Self.triesOfAFailureThatStays) {
            let deliveries = try await self.log.record(events)
            return (try self.publisher.startSending(deliveries), deliveries)
        }
        switch outcome {
        case .done(let (confirms, deliveries)):
            return Processed(
                pushed: PushedBatch(confirms: confirms, events: deliveries.map(\.eventID), deliveries: parts.map(\.delivery)))
        case .stopped(let error):
            await self.giveBack(parts.map(\.delivery), count: events.count, error: error)
            return Processed(gaveBack: true)
        case .keepsFailing(let error):
            self.logger.error(
                "recording domain events keeps failing the same way; recording them one message at a time",
                metadata: ["events": "\(events.count)", "error": "\(LoggedError(error))"])
            return await self.isolate(parts, behind: behind.flatMap(\.parts))
        }
    }

    /// A batch whose failure stays (a statement the data breaks, say), recorded one message at a
    /// time in order, so that one poison message neither loops for ever nor holds back the
    /// events around it. Given back to the queue whole, it came again a second later, failed
    /// again, and was never dead-lettered (the forty-fifth session's review).
    ///
    /// A message behind others that keep failing alone is first recorded in a transaction that
    /// is rolled back (``EventLog/tryRecording(_:)``). When that works the database takes
    /// writes: those ahead of it get one more try, in their place, and are poison when they fail
    /// it (one that records then was hit by a fault that passed). A poison message is
    /// dead-lettered to `delivery.events.dead` with an error, where an operator can look at it
    /// and move it back. When no message behind them records, the failure may be the system's (a
    /// database that refuses every write, say): they stay at the head of the queue
    /// (``Processed/kept``), and nothing is dead-lettered. Until the fiftieth session the later
    /// messages were recorded for real, and three failing messages in a row sent the batch
    /// back: three poison messages at the head of the queue held up every event behind them for
    /// ever (a review).
    ///
    /// The messages behind the chunk (`behind`) tell too, when nothing behind the failing ones in
    /// it recorded: a chunk is cut by its pushes' bytes, and a large group's event alone in its
    /// chunk had nothing behind it to tell by, and was kept for good with every event behind it
    /// (a review of this, in the session that made it). They are only tried, never recorded
    /// here: those that fail the test too are handled in their own chunk, within the
    /// ``PushBudget`` (handled with this one, their pushes passed it; the next review).
    private func isolate(_ parts: [Part], behind: [Part]) async -> Processed {
        var recorded: [(delivery: AMQPDelivery, deliveries: [Delivery])] = []
        var failing: [Part] = []
        for (index, part) in parts.enumerated() {
            if !failing.isEmpty {
                switch await self.retrying(part.events.count, tries: 1, { try await self.log.tryRecording(part.events) }) {
                case .done: break
                case .keepsFailing:
                    failing.append(part)
                    continue
                case .stopped(let error):
                    return await self.push(recorded, givingBack: (failing + parts[index...]).map(\.delivery), error: error)
                }
                if let (rest, error) = await self.settle(failing, into: &recorded) {
                    return await self.push(recorded, givingBack: (rest + parts[index...]).map(\.delivery), error: error)
                }
                failing = []
            }
            switch await self.retrying(
                part.events.count, tries: Self.triesOfAMessageAlone, { try await self.log.record(part.events) })
            {
            case .done(let deliveries): recorded.append((part.delivery, deliveries))
            case .keepsFailing: failing.append(part)
            case .stopped(let error):
                return await self.push(recorded, givingBack: (failing + parts[index...]).map(\.delivery), error: error)
            }
        }
        probing: for later in behind where !failing.isEmpty {
            switch await self.retrying(later.events.count, tries: 1, { try await self.log.tryRecording(later.events) }) {
            case .keepsFailing: continue
            case .stopped(let error): return await self.push(recorded, givingBack: failing.map(\.delivery), error: error)
            case .done:
                if let (rest, error) = await self.settle(failing, into: &recorded) {
                    return await self.push(recorded, givingBack: rest.map(\.delivery), error: error)
                }
                failing = []
                break probing
            }
        }
        if !failing.isEmpty {
            self.logger.error(
                "domain events keep failing with none behind them recorded; they stay at the head of the queue",
                metadata: ["messages": "\(failing.count)"])
        }
        return await self.push(recorded, keeping: failing)
    }

    /// The database takes writes (a message behind `failing` recorded in a rolled-back
    /// transaction): each of `failing` gets one more try, in its place, and is poison when it
    /// fails it. Returns what is left to give back, and why, when shutdown came meanwhile.
    private func settle(
        _ failing: [Part], into recorded: inout [(delivery: AMQPDelivery, deliveries: [Delivery])]
    ) async -> (rest: [Part], error: any Error)? {
        var ahead = failing[...]
        while let earlier = ahead.popFirst() {
            switch await self.retrying(earlier.events.count, tries: 1, { try await self.log.record(earlier.events) }) {
            case .done(let deliveries): recorded.append((earlier.delivery, deliveries))
            case .keepsFailing: self.deadLetter([earlier.delivery])
            case .stopped(let error): return ([earlier] + ahead, error)
            }
        }
        return nil
    }

    /// Starts pushing what was recorded (none when nothing was); `kept` stays at the head of the
    /// queue, and `rest` goes back to it (shutdown came, with `error`).
    private func push(
        _ recorded: [(delivery: AMQPDelivery, deliveries: [Delivery])], keeping kept: [Part] = [],
        givingBack rest: [AMQPDelivery] = [], error: (any Error)? = nil
    ) async -> Processed {
        var processed = Processed(kept: kept, gaveBack: !rest.isEmpty)
        if !rest.isEmpty {
            self.logger.warning(
                "recording domain events stopped; the rest go back to the queue",
                metadata: ["messages": "\(rest.count)", "error": "\(error.map { "\(LoggedError($0))" } ?? "-")"])
            for delivery in rest { delivery.nack(requeue: true) }
        }
        guard !recorded.isEmpty else { return processed }
        let deliveries = recorded.flatMap(\.deliveries)
        switch await self.retrying(deliveries.count, tries: .max, { try self.publisher.startSending(deliveries) }) {
        case .done(let confirms):
            processed.pushed = PushedBatch(
                confirms: confirms, events: deliveries.map(\.eventID), deliveries: recorded.map(\.delivery))
        case .keepsFailing(let error), .stopped(let error):
            // Recorded: given back, they come again as a push of what is still pending (in any
            // order: they have their seqs).
            await self.giveBack(recorded.map(\.delivery), count: deliveries.count, error: error)
        }
        return processed
    }

    private func deadLetter(_ poison: [AMQPDelivery]) {
        for delivery in poison {
            self.logger.error(
                "a domain event that cannot be recorded was dead-lettered",
                metadata: [
                    "message_id": "\(delivery.properties.messageID ?? "-")", "routing_key": "\(delivery.routingKey)",
                ])
            delivery.reject(requeue: false)
        }
    }

    /// What came of ``retrying(_:tries:_:)``.
    private enum Attempt<Value> {
        case done(Value)
        /// A failure that is not ``isPassing(_:)``, `tries` times.
        case keepsFailing(any Error)
        /// Shutdown or cancellation came while it failed.
        case stopped(any Error)
    }

    /// Runs `body` until it succeeds, with a backoff: a failure that passes (``isPassing(_:)``)
    /// is tried again until shutdown, any other `tries` times.
    private func retrying<Value>(
        _ events: Int, tries: Int, _ body: () async throws -> Value
    ) async -> Attempt<Value> {
        var backoff = Backoff(initial: .milliseconds(200), maximum: .seconds(5))
        var failures = 0
        while true {
            do {
                return .done(try await body())
            } catch {
                failures += 1
                if Task.isShuttingDownGracefully || Task.isCancelled { return .stopped(error) }
                if !Self.isPassing(error), failures >= tries { return .keepsFailing(error) }
                if ReconnectLoop.isWorthAWarning(failuresInARow: failures) {
                    self.logger.warning(
                        "recording domain events failed; trying again",
                        metadata: ["events": "\(events)", "attempt": "\(failures)", "error": "\(LoggedError(error))"])
                }
                try? await Task.sleep(for: backoff.next())
            }
        }
    }

    /// Tries in place of a batch whose failure is not ``isPassing(_:)``.
    static let triesOfAFailureThatStays = 5
    /// Tries of one message of such a batch, recorded alone.
    static let triesOfAMessageAlone = 2

    /// A failure that ends by itself: PostgreSQL or the broker away or restarting, a deadlock or
    /// a serialization failure.
    static func isPassing(_ error: any Error) -> Bool {
        if Database.isUnavailable(error) || Database.isConflict(error) || error is AMQPError { return true }
        // Insufficient resources (53) and an operator's intervention (57: a statement cancelled,
        // a server shutting down).
        guard let error = error as? PSQLError, let state = error.serverInfo?[.sqlState] else { return false }
        return state.hasPrefix("53") || state.hasPrefix("57")
    }

    /// Once the batch's pushes are confirmed, its events go on to their first retry check.
    private func handOn(_ batch: PushedBatch) async {
        defer { self.pushBudget.give(batch.pushBytes) }
        do {
            try await batch.confirms.confirmed()
            await self.retryChecks.add(events: batch.events, acking: batch.deliveries)
        } catch {
            await self.giveBack(batch.deliveries, count: batch.events.count, error: error)
        }
    }

    /// Puts the domain events of a failed batch back on the queue, and pauses a moment.
    private func giveBack(_ deliveries: [AMQPDelivery], count: Int, error: any Error) async {
        self.logger.warning(
            "recording or pushing domain events failed; they will come again",
            metadata: ["events": "\(count)", "error": "\(LoggedError(error))"])
        await deliveries.requeueAfterFailure()
    }
}

extension DomainEventConsumer {
    /// The domain event a message carries, or the receipts of a batch (all of them, or nil when
    /// any cannot be read: the whole message is then dead-lettered, as one poison event is).
    static func events(in delivery: AMQPDelivery) -> [IncomingEvent]? {
        guard delivery.properties.type == DeliveryTopology.receiptsBatchType else {
            return IncomingEvent(decoding: delivery.body).map { [$0] }
        }
        guard let batch = try? MessageBatch(decoding: delivery.body) else { return nil }
        var events: [IncomingEvent] = []
        for item in batch.items {
            guard let event = IncomingEvent(decoding: item.body) else { return nil }
            events.append(event)
        }
        return events
    }
}

/// Runs the retry checks that come out of the delay queues (`delivery.due`): an event whose
/// deliveries are still pending is pushed again to those users, and the next check is
/// scheduled; after the last one a ``DeadLetter`` goes to `delivery.dead` (the event stays in
/// the log for catch-up until it expires, and so does its dead letter). A dead letter moved back
/// to `delivery.due` is replayed from the log.
struct RetryConsumer: Service {
    let amqp: AMQPConnection
    let log: EventLog
    let publisher: PushPublisher
    /// How long an event stays in the log: a dead letter expires after it (its `expiration`), at
    /// most the retries' span after its event.
    let retention: Duration
    let logger: Logger

    /// Pushes built and published at once by a check: 1,024 of a 256-member group's largest
    /// events are about 25 MB (a check of 128 such events has 32,768 pushes, built at once
    /// until the forty-ninth session: a review). A check of DMs is one publish, as before.
    static let pushesPerPublish = 1024

    /// `delivery_redelivered_total`: pushes sent again by a retry check.
    static let redelivered = Counter(label: "delivery_redelivered_total")
    /// `delivery_dead_lettered_total`: pushes still unacknowledged after the last retry level,
    /// sent to `delivery.dead`.
    static let deadLettered = Counter(label: "delivery_dead_lettered_total")

    func run() async throws {
        let consumer = self.amqp.consume(queue: DeliveryTopology.due, prefetch: 32)
        try await consumer.runUntilShutdown {
            for await delivery in consumer {
                await self.check(delivery)
            }
        }
    }

    private func check(_ delivery: AMQPDelivery) async {
        if delivery.properties.type == DeadLetter.messageType { return await self.replay(delivery) }
        guard let check = try? MessengerJSON.decode(RetryCheck.self, from: delivery.body) else {
            self.logger.error(
                "undecodable retry check dropped", metadata: ["message_id": "\(delivery.properties.messageID ?? "-")"])
            delivery.reject(requeue: false)
            return
        }
        do {
            let pending = try await self.log.retry(
                events: check.eventIds.map(\.uuid), level: RetryLevel(check, redelivered: delivery.redelivered))
            if !pending.isEmpty {
                // An operator's check may carry any attempt: past the last level it dead-letters.
                let attempt = min(check.attempt, Int(Int32.max)) + 1
                let after: [AMQPMessage]
                var deadLettered = 0
                var seen = Set<EntityID>()
                let stillPending = pending.map(\.eventID).filter { seen.insert($0).inserted }
                if let next = try self.publisher.retryCheck(events: stillPending, attempt: attempt) {
                    after = [next]
                } else {
                    after = try pending.map { pending in
                        try self.publisher.deadLetter(pending, attempts: attempt, retention: self.retention)
                    }
                    deadLettered = pending.count
                    // Routine without presence (an offline user's every push ends here): the
                    // count is in /metrics, a line per check only when asked for.
                    self.logger.info(
                        "events still unacknowledged after their last push; dead-lettered",
                        metadata: ["events": "\(stillPending.count)", "deliveries": "\(pending.count)"])
                }
                // The pushes are built and confirmed a slice at a time (each a copy of its event's
                // data), the next check or the dead letters with the last slice.
                for start in stride(from: 0, to: pending.count, by: Self.pushesPerPublish) {
                    let end = min(start + Self.pushesPerPublish, pending.count)
                    var messages = pending[start..<end].map { self.publisher.push($0, redelivery: true) }
                    if end == pending.count { messages += after }
                    try await self.amqp.publish(messages)
                }
                Self.redelivered.increment(by: pending.count)
                Self.deadLettered.increment(by: deadLettered)
            }
            delivery.ack()
        } catch {
            self.logger.warning("retry check failed; it will come again", metadata: ["error": "\(LoggedError(error))"])
            await delivery.requeueAfterFailure()
        }
    }

    /// A dead letter an operator moved to `delivery.due`: its delivery, if still pending and in
    /// the log, is pushed once more as the log has it now (a deleted message's erased), flagged
    /// `redelivery`, and not retried again.
    private func replay(_ delivery: AMQPDelivery) async {
        guard let letter = try? MessengerJSON.decode(DeadLetter.self, from: delivery.body) else {
            self.logger.error(
                "undecodable dead letter dropped", metadata: ["message_id": "\(delivery.properties.messageID ?? "-")"])
            delivery.reject(requeue: false)
            return
        }
        do {
            let pending = try await self.log.retry(events: [letter.eventId.uuid], users: [letter.userId.uuid])
            if !pending.isEmpty {
                try await self.amqp.publish(pending.map { self.publisher.push($0, redelivery: true) })
                Self.redelivered.increment(by: pending.count)
            }
            delivery.ack()
        } catch {
            self.logger.warning(
                "replaying a dead letter failed; it will come again", metadata: ["error": "\(LoggedError(error))"])
            await delivery.requeueAfterFailure()
        }
    }
}
