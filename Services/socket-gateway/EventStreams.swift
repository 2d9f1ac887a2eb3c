import Foundation
import Logging
import MessengerAMQP
import MessengerContracts
import NIOCore
import SocketIOProtocol
import SocketIOServer
import Synchronization
import ThreadedIO

/// A durable event on its way to a socket: the client event name and its one argument
/// `{eventId, seq, type, occurredAt, data}`, encoded once for every socket it goes to.
struct DurableEvent: Sendable {
    var name: String
    var seq: Int64
    var packet: EncodedEvent
    var redelivery: Bool

    /// From a push's event name and arguments; nil when it is not a durable event (a user's
    /// seqs start at 1: one below, the lowest `Int64`, came from any program that publishes to
    /// Redis or the broker and trapped where the streams count one below a seq, until the
    /// sixty-second session; a review). The packet is `argumentsJSON` spliced in when given (the
    /// arguments' text as the push carried it).
    init?(name: String, arguments: [JSONValue], argumentsJSON: String? = nil, redelivery: Bool) {
        guard ClientEvent.durable.contains(name), arguments.count == 1, case .number(let seq)? = arguments[0]["seq"],
            let exact = Int64(exactly: seq), exact >= 1
        else { return nil }
        self.name = name
        self.seq = exact
        self.packet = argumentsJSON.map { EncodedEvent(name, argumentsJSON: $0) } ?? EncodedEvent(name, arguments)
        self.redelivery = redelivery
    }

    /// From an event of a `sync` reply.
    init?(fetched event: JSONValue) {
        guard let type = event["type"]?.stringValue, let name = ClientEvent.names[type] else { return nil }
        self.init(name: name, arguments: [event], redelivery: false)
    }
}

/// The durable-event stream of every connected socket of this gateway, by socket id.
///
/// On connect, a socket first gets its replay (every unacknowledged event after its `lastSeq`,
/// fetched from delivery page by page); live pushes that arrive meanwhile wait, then go out
/// after it with duplicates dropped. Live, a push whose seq leaves a gap makes the stream fetch
/// the missing events first. So each socket sees each seq once, in ascending order, across the
/// seam between replay and live.
///
/// Replays run at most ``maximumConcurrentReplays`` at a time, and once half of those places are
/// taken, at most ``maximumConcurrentReplaysPerUser`` of one user's; the others wait in line
/// (``ReplayLine``): a reconnect storm asks delivery for its pages at a pace it can serve, the
/// gateway's memory does not swell with thousands of replays in flight at once, and one user's
/// slow sockets cannot hold every place. Sockets of one user that ask for the same page at the
/// same time (devices coming back together) share one fetch: see
/// ``fetch(user:afterSeq:limit:includeAcknowledged:notBefore:)``.
final class EventStreams: Sendable {
    static let maximumConcurrentReplays = 512
    static let maximumConcurrentReplaysPerUser = 2

    /// A page of the user's unacknowledged events, and the user's latest seq when delivery said.
    typealias Page = (events: [DurableEvent], hasMore: Bool, latestSeq: Int64?)

    private struct PageKey: Hashable {
        var user: String
        var afterSeq: Int64
        var limit: Int
        var acknowledged: AcknowledgedEvents
    }

    /// A fetch in flight, and when it was asked of delivery.
    private struct SharedFetch {
        var started: ContinuousClock.Instant
        var page: Task<Page?, Never>
    }

    /// A stream waiting for its replay, and when it was registered.
    private typealias Stream = SocketEventStream<SocketIOSocket>

    private typealias PendingReplay = (stream: Stream, registered: ContinuousClock.Instant)

    private let streams = Mutex<[String: Stream]>([:])
    private let replays = Mutex(
        ReplayLine<PendingReplay>(
            maximumRunning: EventStreams.maximumConcurrentReplays, maximumPerUser: EventStreams.maximumConcurrentReplaysPerUser)
    )
    private let fetches = Mutex<[PageKey: SharedFetch]>([:])
    private let rpc: RPCClient
    private let logger: Logger

    init(rpc: RPCClient, logger: Logger) {
        self.rpc = rpc
        self.logger = logger
    }

    /// Starts the socket's stream with its replay after `lastSeq`.
    func connected(_ socket: SocketIOSocket, lastSeq: Int64) {
        let stream = Stream(
            socket: socket, ordering: SeqOrdering(after: lastSeq),
            fetch: self.fetch(user:afterSeq:limit:acknowledged:notBefore:))
        self.streams.withLock { $0[socket.id] = stream }
        let pending = (stream: stream, registered: ContinuousClock.now)
        let user = socket.userID
        let startsNow = self.replays.withLock { $0.arrive(pending, user: user) }
        if startsNow { Task { await self.runReplays(startingWith: pending, of: user) } }
    }

    /// Replays `first`, then a replay the line lets start (the others it lets start at the same
    /// time get tasks of their own), until none can.
    private func runReplays(startingWith first: PendingReplay, of user: String) async {
        var next: (user: String, entry: PendingReplay)? = (user, first)
        while let (user, (stream, registered)) = next {
            // A socket that left while it waited needs no replay.
            if self.streams.withLock({ $0[stream.socketID] }) === stream { await stream.replay(registered: registered) }
            let starting = self.replays.withLock { $0.finish(user: user) }
            for other in starting.dropFirst() { Task { await self.runReplays(startingWith: other.entry, of: other.user) } }
            next = starting.first
        }
    }

    /// Live events at most this many sockets ask delivery for at once after a fan-out gap
    /// (see ``lookForMissedEvents(storedBefore:)``).
    static let maximumConcurrentProbes = 16

    /// Pushes may have missed this gateway's sockets (its Redis subscriber lost its connection,
    /// or dropped messages): each socket asks delivery for the events after the last one it got,
    /// acknowledged ones too, at most ``maximumConcurrentProbes`` at a time. Sockets of one user
    /// share a page. `storedBefore`: from when on pushes reach the sockets again (the
    /// resubscription), so a fetch asked since then has every event they may have missed.
    ///
    /// Until the forty-seventh session nothing looked: a socket got what it missed only when
    /// the user's next event showed the gap, or from delivery's retries, which stop once another
    /// device acknowledges.
    func lookForMissedEvents(storedBefore: ContinuousClock.Instant) async {
        let streams = self.streams.withLock { Array($0.values) }
        await Self.forEach(streams) { await $0.lookForMissedEvents(storedBefore: storedBefore) }
    }

    /// Runs `body` for each of `streams`, at most ``maximumConcurrentProbes`` at a time. A
    /// graceful shutdown stops it: the streams not reached yet are not.
    private static func forEach(_ streams: [Stream], _ body: @escaping @Sendable (Stream) async -> Void) async {
        await withTaskGroup(of: Void.self) { group in
            var next = streams.makeIterator()
            for _ in 0..<Self.maximumConcurrentProbes {
                guard let stream = next.next() else { break }
                _ = group.addTaskUnlessCancelled { await body(stream) }
            }
            while await group.next() != nil {
                guard let stream = next.next() else { continue }
                _ = group.addTaskUnlessCancelled { await body(stream) }
            }
        }
    }

    /// Each socket pushes again what it was sent and has not acknowledged, once it is due
    /// (``SocketEventStream/pushAgainIfUnacknowledged(now:after:atMost:)``), at most
    /// ``maximumConcurrentProbes`` asking delivery at a time. Sockets with everything
    /// acknowledged are passed by.
    func pushAgainUnacknowledged(after base: Duration, atMost cap: Duration) async {
        let now = ContinuousClock.now
        let streams = self.streams.withLock { $0.values.filter(\.mayHaveUnacknowledged) }
        await Self.forEach(streams) { await $0.pushAgainIfUnacknowledged(now: now, after: base, atMost: cap) }
    }

    /// The socket's `ack_events` was answered: every event up to `seq` is acknowledged.
    func acknowledged(_ socket: SocketIOSocket, through seq: Int64) async {
        guard let stream = self.streams.withLock({ $0[socket.id] }) else { return }
        await stream.acknowledged(through: seq)
    }

    func disconnected(_ socket: SocketIOSocket) {
        guard let stream = self.streams.withLock({ $0.removeValue(forKey: socket.id) }) else { return }
        stream.leave()
        self.replays.withLock { $0.removeWaiting { $0.stream === stream } }
    }

    /// Hands a live event to a socket's stream. A socket whose stream is not started yet gets
    /// it from its replay instead (delivery stores every event before pushing it).
    func deliver(_ event: DurableEvent, to socket: SocketIOSocket) async {
        guard let stream = self.streams.withLock({ $0[socket.id] }) else { return }
        await stream.receive(event)
    }

    /// One page of the user's unacknowledged events after `afterSeq`, with the `acknowledged`
    /// ones asked for, and whether more follow.
    ///
    /// A caller joins a fetch of the same page already in flight when that fetch was asked of
    /// delivery at or after `notBefore`: its page then holds every event stored before that
    /// moment, and anything stored later reaches the caller live. A replay passes the moment
    /// its socket's stream was registered (pushes reach the stream from then on); a gap fill
    /// passes the moment it found the gap.
    @Sendable private func fetch(
        user: String, afterSeq: Int64, limit: Int, acknowledged: AcknowledgedEvents, notBefore: ContinuousClock.Instant
    ) async -> Page? {
        let key = PageKey(user: user, afterSeq: afterSeq, limit: limit, acknowledged: acknowledged)
        let page = self.fetches.withLock { fetches -> Task<Page?, Never> in
            if let shared = fetches[key], shared.started >= notBefore { return shared.page }
            let started = ContinuousClock.now
            let page = Task { await self.fetchFromDelivery(key) }
            fetches[key] = SharedFetch(started: started, page: page)
            return page
        }
        let result = await page.value
        self.fetches.withLock { fetches in
            if fetches[key]?.page == page { fetches[key] = nil }
        }
        return result
    }

    private func fetchFromDelivery(_ key: PageKey) async -> Page? {
        do {
            var request = SyncRequest(afterSeq: key.afterSeq, limit: key.limit)
            switch key.acknowledged {
            case .none: break
            case .above(let seq): request.acknowledgedAfter = seq
            case .storedSince(let moment): (request.includeAcknowledged, request.acknowledgedSince) = (true, moment)
            case .all: request.includeAcknowledged = true
            }
            let reply = try await self.rpc.callRaw(
                DeliveryMessage.sync, to: .delivery, payload: request, actor: UUID(text: key.user))
            let json = try JSONValue.parse(String(decoding: reply, as: UTF8.self))
            guard json["ok"] == .bool(true), case .array(let events)? = json["data"]?["events"] else {
                self.logger.warning("replay refused", metadata: ["reply": "\(json.jsonText.prefix(200))"])
                return nil
            }
            let latest: Int64? =
                if case .number(let value)? = json["data"]?["latestSeq"] { Int64(exactly: value) } else { nil }
            return (events.compactMap(DurableEvent.init(fetched:)), json["data"]?["hasMore"] == .bool(true), latest)
        } catch {
            self.logger.warning("fetching events to replay failed", metadata: ["error": "\(LoggedError(error))"])
            return nil
        }
    }
}

/// Which acknowledged events a page of a user's events holds besides the unacknowledged ones.
enum AcknowledgedEvents: Hashable, Sendable {
    /// None: a replay's first page, a push again.
    case none
    /// Those with a seq above this one: a replay's later pages, above the first page's latest
    /// seq (see ``SocketEventStream/replay(registered:)``).
    case above(Int64)
    /// Those stored (first pushed) at or after this moment: a look for the pushes a replay may
    /// have missed, and a gap's fill until the socket is past that replay's end.
    case storedSince(Date)
    /// Every one the log keeps: a gap's fill.
    case all
}

/// One socket's durable events, kept in order by ``SeqOrdering``: handled one at a time (a
/// replay or a gap fill finishes before the next push is looked at).
///
/// The push consumer hands a live event to one socket after the other and waits for each: a
/// fan-out that did not wait (a task per socket's drain) was measured slower for DMs and groups
/// (p99 at 400 DMs a second 129 against 62 ms). A replay's page goes out in slices of 32 events
/// (``sliceSize``), and the events that waited meanwhile in one write. The stream runs on its
/// socket's event loop, so handing an event to the connection is a call on the same thread, not
/// one more hop.
actor SocketEventStream<Socket: DurableEventSink> {
    typealias Fetch =
        @Sendable (
            _ user: String, _ afterSeq: Int64, _ limit: Int, _ acknowledged: AcknowledgedEvents,
            _ notBefore: ContinuousClock.Instant
        ) async -> EventStreams.Page?

    static var pageSize: Int { 500 }
    /// Events of a replay's page written at once: at most about 1.5 MB (a body of 4,000
    /// characters is at most about 48 KB as escaped JSON), well under what may wait for a
    /// client.
    static var sliceSize: Int { 32 }

    private let socket: Socket
    private let fetch: Fetch
    nonisolated var socketID: String { self.socket.id }
    nonisolated var unownedExecutor: UnownedSerialExecutor {
        self.socket.eventLoop.executor.asUnownedSerialExecutor()
    }
    private var ordering: SeqOrdering
    /// The socket left (see ``leave()``).
    private let left = Atomic(false)
    private var waiting: [DurableEvent] = []
    /// The lowest seq of the live events that came during the replay, those collapsed away
    /// from ``waiting`` included (see ``receive(_:)``).
    private var lowestSeqDuringReplay: Int64?
    private var replaying = true
    /// True while the replay, or a batch of waiting events, is being handled.
    private var busy = true
    /// A gap's fetch under way (see ``drain(startingWith:)``), or a look for missed events.
    private var filling: Task<Void, Never>?
    /// Pushes may have missed this socket while it was busy: look once it is not (see
    /// ``lookForMissedEvents(storedBefore:)``), with fetches asked at or after this moment.
    private var missedPushesSince: ContinuousClock.Instant?
    /// Pushes may have missed this socket during its replay.
    private var missedPushesDuringReplay = false
    /// When the stream was registered: pushes reach it from then on.
    private let registeredAt = Date()
    /// After a replay that pushes may have missed: the events up to `through` that are not in
    /// the replay's pages were acknowledged (on another device) before it ended. Of those, the
    /// ones delivery stored since `since` (the socket's registration) must go out, and the
    /// older ones not: the look and any gap's fill ask delivery for the acknowledged events
    /// stored since then only, until the socket is past `through`.
    private var acknowledgedSince: (since: Date, through: Int64)?
    /// What the socket was sent and has not acknowledged (see
    /// ``pushAgainIfUnacknowledged(now:after:atMost:)``).
    private var unacknowledged: UnacknowledgedPushes {
        didSet { self.hasUnacknowledged.store(!self.unacknowledged.isEmpty, ordering: .relaxed) }
    }
    /// Whether ``unacknowledged`` holds anything, for the sweep to pass the others by without a
    /// hop to their loops.
    private let hasUnacknowledged = Atomic(false)

    init(socket: Socket, ordering: SeqOrdering, fetch: @escaping Fetch) {
        self.socket = socket
        self.ordering = ordering
        self.fetch = fetch
        self.unacknowledged = UnacknowledgedPushes(after: ordering.delivered)
    }

    /// The socket left: the stream sends nothing more, and a replay or a gap's fill under way
    /// stops at its next step. Until the forty-first session they went on to the end: a
    /// reconnecting client's old replay fetched every page again while its new one did, a
    /// revoked session's socket kept getting events until its connection closed, and a client
    /// that disconnected the namespace and connected it again on the same connection got the old
    /// replay's slices between the new one's, out of seq order.
    nonisolated func leave() {
        self.left.store(true, ordering: .relaxed)
    }

    private var hasLeft: Bool { self.left.load(ordering: .relaxed) }

    /// Sends every unacknowledged event after the socket's `lastSeq`, then what arrived
    /// meanwhile. `registered`: when the stream was registered, so that every push from then on
    /// reached it.
    ///
    /// When delivery does not answer, the connection is closed and the client reconnects to ask
    /// again: until the fortieth session the replay just ended, and the socket got nothing of
    /// what it missed until a live push showed the gap.
    func replay(registered: ContinuousClock.Instant) async {
        // The first page's read is the replay's cut: an event stored before it and acknowledged
        // (on another device) by the time its page is read is left out, as protocol.md has it;
        // one stored after it goes out whatever, and so does one pushed to this socket since it
        // registered (``acknowledgedInReplay(firstPageLatest:)``). Until the fifty-fourth session
        // the pages held unacknowledged events only, so an event stored during a replay of
        // several pages and acknowledged elsewhere before the next page was read was in none,
        // the pages took the socket past it, and its push, when it came after the replay, was
        // dropped as one the socket had (a review); so was one whose push came during the
        // replay and was collapsed away (``maximumWaiting``).
        var firstPageLatest: Int64?
        var first = true
        while true {
            guard
                let page = await self.fetchPatiently(
                    after: self.ordering.delivered, limit: Self.pageSize,
                    self.acknowledgedInReplay(firstPageLatest: firstPageLatest), registered)
            else {
                if !self.hasLeft { await self.socket.closeConnection(reason: "replay unavailable") }
                return  // busy for good: nothing more goes to this socket
            }
            guard !self.hasLeft else { return }
            // Nothing has gone out yet (the stream is busy until its replay ends): a `lastSeq`
            // past the user's latest seq comes down to it, or the events up to it would be taken
            // for ones the socket has. Such a `lastSeq` comes down to below the lowest seq pushed
            // to the socket since it registered, if that is lower: the latest seq counts the
            // events stored since, and their pushes, waiting here, were dropped as ones the socket
            // had (until the fifty-eighth session; a review). A `lastSeq` within the log stays:
            // a push at or below it is a late copy of an event the client has (a second review).
            if first, let latest = page.latestSeq {
                let pastTheLog = self.ordering.delivered > latest
                let firstPushed = pastTheLog ? self.lowestSeqDuringReplay : nil
                self.ordering.resume(atMost: firstPushed.map { min(latest, $0 - 1) } ?? latest)
                self.unacknowledged.resume(atMost: self.ordering.delivered)
                firstPageLatest = latest
            }
            first = false
            await self.sendPaced(self.accept(self.withWaiting(page.events), before: nil))
            guard page.hasMore, !page.events.isEmpty else {
                // Every event up to `latest` was in the replay or is acknowledged, save those
                // pushed to this socket while it ran: another device may have acknowledged them
                // meanwhile, and they wait here, not in the page. Caught up through them, the
                // socket took them for ones it had and dropped them, and no gap was ever seen
                // (a review in the forty-fourth session).
                // The lowest seq that came during the replay, not only of those still waiting:
                // past ``maximumWaiting`` the older ones were collapsed away, and caught up
                // through them the socket never got them (until the forty-sixth session).
                // Pushes that missed the socket during the replay (a gap in the gateway's fan-out)
                // are not among those either, and nothing here tells which they are: delivery
                // does, by when it stored each event (``acknowledgedSince``), for the look for
                // missed events that follows and any gap's fill. (The first version of this look
                // caught up through the first page's latest seq, and lost such an event stored
                // before that page; the second told events apart by their `occurredAt`, the
                // producer's clock, and paged through every acknowledged event in the log:
                // the forty-seventh session's reviews.)
                if !page.hasMore, let latest = page.latestSeq {
                    // Redeliveries aside: they go out whatever the socket is past, and a stale one
                    // (of an event acknowledged meanwhile) held the socket below it, so that the
                    // next push's gap fetched every acknowledged event up to the latest (until the
                    // fifty-third session; a review). What they stand for is in the pages.
                    let firstWaiting = [
                        self.waiting.lazy.filter { !$0.redelivery }.map(\.seq).min(), self.lowestSeqDuringReplay,
                    ].compactMap { $0 }.min()
                    let through = firstWaiting.map { min(latest, $0 - 1) } ?? latest
                    if self.missedPushesDuringReplay {
                        self.acknowledgedSince = (self.registeredAt - Self.clockMargin, through)
                    } else {
                        self.ordering.caughtUp(through: through)
                    }
                }
                break
            }
        }
        self.replaying = false
        self.lowestSeqDuringReplay = nil
        if self.missedPushesDuringReplay {
            self.missedPushesDuringReplay = false
            self.missedPushesSince = .now
        }
        await self.drain()
    }

    /// The acknowledged events a replay's page asks for: those above the first page's latest
    /// seq (stored after the replay's cut), and those from the lowest seq pushed to the socket
    /// since it registered, redeliveries aside (a push that came during the replay, perhaps
    /// collapsed away since, stands for an event the socket must get); none for a first page
    /// before any push came.
    private func acknowledgedInReplay(firstPageLatest: Int64?) -> AcknowledgedEvents {
        let bounds = [firstPageLatest, self.lowestSeqDuringReplay.map { $0 - 1 }].compactMap { $0 }
        return bounds.min().map { .above($0) } ?? .none
    }

    /// A page written at once could pass the bound at which a session is closed (a long-polling
    /// client takes a page in many GETs, a phone reads a WebSocket at its link's pace): a page
    /// goes out in slices, each once the one before is mostly out.
    private func sendPaced(_ packets: [EncodedEvent]) async {
        for start in stride(from: 0, to: packets.count, by: Self.sliceSize) where !self.hasLeft {
            await self.send(Array(packets[start..<min(start + Self.sliceSize, packets.count)]))
            await self.socket.waitForRoom()
        }
    }

    /// One write to the socket, unless it left.
    private func send(_ packets: [EncodedEvent]) async {
        guard !self.hasLeft, !packets.isEmpty else { return }
        await self.socket.emit(packets)
        self.unacknowledged.sent(through: self.ordering.delivered, at: .now)
    }

    /// The socket acknowledged every event up to `seq` (its `ack_events` was answered).
    func acknowledged(through seq: Int64) {
        self.unacknowledged.acknowledge(through: seq)
    }

    /// Whether the socket was sent events it has not acknowledged, as far as the stream knows.
    nonisolated var mayHaveUnacknowledged: Bool { self.hasUnacknowledged.load(ordering: .relaxed) }

    /// Pushes again the events the socket was sent and has not acknowledged, once they are
    /// due (``UnacknowledgedPushes/due(at:after:atMost:)``): one page of them (the oldest 500)
    /// from delivery, which knows what any of the user's devices acknowledged. Those it finds
    /// acknowledged are forgotten. A busy stream (a replay, a gap's fill) is passed by until the
    /// next sweep; one whose fetch fails too.
    ///
    /// Until the fifty-second session an event stayed unacknowledged on an open socket once
    /// delivery's retries were over (about 6 minutes by default), until the socket reconnected
    /// or asked with `sync`, where protocol.md has it delivered again until acknowledged or
    /// expired (a review).
    func pushAgainIfUnacknowledged(now: ContinuousClock.Instant, after base: Duration, atMost cap: Duration) async {
        guard !self.hasLeft, !self.busy, let due = self.unacknowledged.due(at: now, after: base, atMost: cap) else { return }
        self.busy = true
        // Fetched here, within the sweep's bound on fetches at once; sent in a task of the
        // stream's own, at the client's pace, as a look for missed events does.
        let page = await self.fetchPatiently(after: self.unacknowledged.acknowledged, limit: Self.pageSize, .none, .now)
        guard let page, !self.hasLeft else { return await self.drain() }
        let again = page.events.filter { $0.seq <= due }
        // The page holds the oldest unacknowledged events: those before its first are
        // acknowledged, and with an empty page, all the socket was sent.
        let first = page.events.first.map { $0.seq - 1 }
        self.unacknowledged.acknowledge(through: first ?? (page.hasMore ? due : self.ordering.delivered))
        if !again.isEmpty { self.unacknowledged.pushedAgain(through: due, at: .now) }
        self.filling = Task {
            await self.sendPaced(again.map(\.packet))
            self.filling = nil
            await self.drain()
        }
    }

    /// A page of events (with the `acknowledged` ones asked for), asked of delivery up to
    /// ``fetchAttempts`` times, about half a second and then a second apart, before the stream
    /// gives up: a delivery that is briefly overloaded or restarting does not close every
    /// socket whose replay or fill it failed (the clients would all reconnect at once).
    private func fetchPatiently(
        after: Int64, limit: Int, _ acknowledged: AcknowledgedEvents, _ notBefore: ContinuousClock.Instant
    ) async -> EventStreams.Page? {
        var backoff = Backoff(initial: .milliseconds(500), maximum: .seconds(1))
        for attempt in 1...Self.fetchAttempts where !self.hasLeft && !Task.isCancelled {
            if let page = await self.fetch(self.socket.userID, after, limit, acknowledged, notBefore) {
                return page
            }
            if attempt < Self.fetchAttempts { try? await Task.sleep(for: backoff.next()) }
        }
        return nil
    }

    static var fetchAttempts: Int { 3 }

    /// Live events that wait while the stream is busy, at most (see ``receive(_:)``).
    static var maximumWaiting: Int { 256 }

    /// A live push. While the stream is busy (its replay, its wait in line, a gap's fetch) it
    /// waits; past ``maximumWaiting`` only the newest waiting event is kept, and the gap it then
    /// leaves is filled from the log like any other (acknowledged events too), so nothing is
    /// lost (a redelivery of an event the socket had is dropped with the rest; delivery pushes
    /// it again at its next retry while it is unacknowledged). Until the forty-third session the
    /// waiting events had no bound: a socket whose replay a slow client read for hours held
    /// every live push of its user meanwhile, each retry of them too (a review).
    func receive(_ event: DurableEvent) async {
        if self.replaying, !event.redelivery {
            self.lowestSeqDuringReplay = min(self.lowestSeqDuringReplay ?? event.seq, event.seq)
        }
        if self.waiting.count >= Self.maximumWaiting, let newest = (self.waiting + [event]).max(by: { $0.seq < $1.seq }) {
            self.waiting = [newest]
        } else {
            self.waiting.append(event)
        }
        guard !self.busy else { return }
        self.busy = true
        await self.drain()
    }

    /// Sends what waits, in order: the events that can go at once leave together in one write,
    /// so the pushes that came while the replay or a gap's fetch ran go out in one write rather
    /// than one per event. `ready`: packets to send first (a gap's events).
    ///
    /// A gap's fetch, a round trip to delivery, runs in a task of its own, and the caller (the
    /// push consumer, which hands each push to one socket after the other) goes on at once:
    /// until the fortieth session it waited for the fetch, and so did every other socket of the
    /// gateway. The stream stays busy meanwhile, so what comes waits behind the gap.
    private func drain(startingWith ready: [EncodedEvent] = []) async {
        var ready = ready
        // What arrives while a write is under way is looked at before the stream stops being
        // busy (a push that came then would otherwise wait for the next one).
        repeat {
            let events = self.waiting
            self.waiting = []
            for (index, event) in events.enumerated() {
                switch self.ordering.decide(seq: event.seq, redelivery: event.redelivery) {
                case .emit:
                    ready.append(event.packet)
                case .drop:
                    break
                case .fillGap(let after):
                    // What is ready goes first: the gap's fetch may take a while.
                    await self.send(ready)
                    self.waiting = Array(events[(index + 1)...]) + self.waiting
                    self.filling = Task { await self.fillThenDrain(gapAfter: after, before: event) }
                    return
                }
            }
            await self.send(ready)
            ready = []
        } while !self.waiting.isEmpty
        self.settleAcknowledgedSince()
        if let since = self.missedPushesSince {
            // In a task of its own, as a gap's fetch: the caller may be the push consumer.
            self.missedPushesSince = nil
            self.filling = Task { await self.fetchMissedThenDrain(storedBefore: since) }
            return
        }
        self.busy = false
    }

    /// Pushes may have missed this socket since `storedBefore` (the gateway's fan-out had a
    /// gap): sends the events after the last one it got, acknowledged ones too, and then what
    /// waits. A socket busy with its replay or a gap looks once that is done. When delivery does
    /// not answer, nothing more is done: the user's next event shows the gap, as before.
    func lookForMissedEvents(storedBefore: ContinuousClock.Instant) async {
        guard !self.hasLeft else { return }
        if self.replaying {
            self.missedPushesDuringReplay = true
        } else if self.busy {
            self.missedPushesSince = max(self.missedPushesSince ?? storedBefore, storedBefore)
        } else {
            self.busy = true
            // The first page is fetched here, within the sweep's bound on fetches at once; what is
            // sent at the client's pace, and any later page, go on in a task of the stream's own,
            // as a gap's fill does. Sent here, until the fiftieth session, 16 sockets that read a
            // slice a minute held the sweep, and every other socket's missed events, for as long
            // (a review).
            let first = await self.fetchPatiently(
                after: self.ordering.delivered, limit: Self.pageSize, self.acknowledgedInGaps, storedBefore)
            guard let first else { return await self.drain() }
            self.filling = Task { await self.fetchMissedThenDrain(storedBefore: storedBefore, first: first) }
        }
    }

    /// Sends the events after the last one the socket got (acknowledged ones too), `first` being
    /// the first page of them when it was fetched already, then what waits.
    private func fetchMissedThenDrain(storedBefore: ContinuousClock.Instant, first: EventStreams.Page? = nil) async {
        var ready: [EncodedEvent] = []
        var first = first
        while !self.hasLeft {
            let after = self.ordering.delivered
            let fetched: EventStreams.Page?
            if let given = first {
                fetched = given
                first = nil
            } else {
                fetched = await self.fetchPatiently(
                    after: after, limit: Self.pageSize, self.acknowledgedInGaps, storedBefore)
            }
            guard let page = fetched else { break }
            ready = self.accept(page.events, before: nil)
            guard page.hasMore, let last = page.events.last?.seq, last > after else {
                // Every event the socket must get came: the others up to the replay's end were
                // acknowledged before it registered.
                if !page.hasMore, let old = self.acknowledgedSince {
                    self.ordering.caughtUp(through: old.through)
                    self.acknowledgedSince = nil
                }
                break
            }
            await self.sendPaced(ready)
            ready = []
        }
        self.filling = nil
        await self.drain(startingWith: ready)
    }

    private func fillThenDrain(gapAfter after: Int64, before event: DurableEvent) async {
        guard let filled = await self.fill(gapAfter: after, before: event) else {
            self.filling = nil
            if !self.hasLeft { await self.socket.closeConnection(reason: "missing events unavailable") }
            return  // busy for good: nothing more goes to this socket
        }
        self.filling = nil
        await self.drain(startingWith: filled)
    }

    /// Returns once no gap's fetch is under way (for tests).
    func settled() async {
        while let filling = self.filling { await filling.value }
    }

    /// The events missing between `after` and `event` (as far as the log has them), then
    /// `event` itself unless the socket has it by then.
    ///
    /// Acknowledged events are fetched too. A gap opens on a connected socket when a push
    /// overtakes an earlier one: the gateways share the pushes, and each writes to its own
    /// sockets before it publishes to the others through Redis. Another device of the user may
    /// have acknowledged the earlier event meanwhile; until the thirty-ninth session the fill
    /// fetched unacknowledged events only, so it came back without it, the socket moved on,
    /// and the earlier push, when it came, was dropped as one the socket had: an outside
    /// tester's laptops lost 558 of 3,000 group messages while their phones acknowledged.
    ///
    /// A gap wider than a page is fetched page by page. When delivery does not answer, nothing
    /// moves past the gap: false, and the caller closes the connection, so that the client
    /// reconnects from what it has. Until the fortieth session the event went out anyway and the
    /// gap was skipped for good (and past 500 missing events, the rest of it too). The last
    /// page's packets are returned, not sent, to leave with what follows in one write.
    private func fill(gapAfter after: Int64, before event: DurableEvent) async -> [EncodedEvent]? {
        var after = after
        var ready: [EncodedEvent] = []
        while after < event.seq - 1, !self.hasLeft {
            let missing = Int(min(Int64(Self.pageSize), event.seq - 1 - after))
            guard let page = await self.fetchPatiently(after: after, limit: missing, self.acknowledgedInGaps, .now)
            else { return nil }
            ready = self.accept(page.events, before: event.seq)
            guard page.hasMore, let last = page.events.last?.seq, last > after, last < event.seq - 1 else { break }
            await self.sendPaced(ready)
            ready = []
            after = last
        }
        if self.ordering.decideAfterGap(seq: event.seq) { ready.append(event.packet) }
        return ready
    }

    /// The packets of the fetched `events` (below `seq`, when given) not sent yet, in order.
    private func accept(_ events: [DurableEvent], before seq: Int64?) -> [EncodedEvent] {
        var packets: [EncodedEvent] = []
        for event in events where seq.map({ event.seq < $0 }) ?? true && self.ordering.accept(fetched: event.seq) {
            packets.append(event.packet)
        }
        self.settleAcknowledgedSince()
        return packets
    }

    /// The acknowledged events a look for missed pushes or a gap's fill asks for: every one,
    /// or while the socket is not past the end of a replay that pushes may have missed, those
    /// stored since it registered (see ``acknowledgedSince``).
    private var acknowledgedInGaps: AcknowledgedEvents {
        self.acknowledgedSince.map { .storedSince($0.since) } ?? .all
    }

    /// Past the replay's end, every event goes to the socket acknowledged or not, as always.
    private func settleAcknowledgedSince() {
        if let old = self.acknowledgedSince, self.ordering.delivered >= old.through { self.acknowledgedSince = nil }
    }

    /// How far apart the gateway's clock and PostgreSQL's, which stamps when delivery stored
    /// an event, may be.
    static var clockMargin: TimeInterval { 2 }

    /// A replay's page, with the live events waiting that fall among its events, in seq order: a
    /// push that came during the replay and was acknowledged on another device meanwhile is not
    /// in the page, and the page's later events would have taken the socket past it (the
    /// forty-seventh session's review).
    private func withWaiting(_ page: [DurableEvent]) -> [DurableEvent] {
        guard let top = page.last?.seq else { return page }
        let inPage = Set(page.lazy.map(\.seq))
        let among = self.waiting.filter { $0.seq < top && !inPage.contains($0.seq) }
        guard !among.isEmpty else { return page }
        return (page + among).sorted { $0.seq < $1.seq }
    }
}

/// Where a stream's events go, in writes of one or more events: a connected socket (tests
/// record the writes instead).
protocol DurableEventSink: Sendable {
    var id: String { get }
    var userID: String { get }
    /// Where the stream runs: the socket's own loop, so a write to it needs no hop.
    var eventLoop: any EventLoop { get }
    /// Runs on the caller's executor (the stream's, the socket's loop).
    nonisolated(nonsending) func emit(_ events: [EncodedEvent]) async
    /// Returns once what was emitted is mostly on its way to the client (a WebSocket writable
    /// again; a long-polling client, which takes 16 packets a GET, with little left waiting).
    func waitForRoom() async
    /// Closes the connection so that the client reconnects and replays what it is missing.
    func closeConnection(reason: String) async
}

extension SocketIOSocket: DurableEventSink {}

/// Delivers an emit to this gateway's own sockets: durable events through each socket's
/// ``SocketEventStream``, anything else (`typing`, pushes of other kinds) straight away.
struct LocalDelivery: Sendable {
    let server: SocketIOServer
    let streams: EventStreams

    func emit(
        _ event: String, _ arguments: [JSONValue], argumentsJSON: String? = nil, rooms: [String], except: [String],
        flags: [String: Bool]
    ) async {
        guard
            let durable = DurableEvent(
                name: event, arguments: arguments, argumentsJSON: argumentsJSON, redelivery: flags["redelivery"] == true)
        else {
            await self.server.emit(event, arguments, rooms: rooms, except: except)
            return
        }
        // A durable event is one user's (its seq is in that user's log): it goes to that user's
        // room alone, which only that user's sockets join. Any other room list (none, which is
        // every socket; two users') is a producer's mistake, and each socket taking it would take
        // the seq for its own user's.
        guard rooms.count == 1, rooms[0].hasPrefix("user:") else { return }
        for socket in self.server.rooms.sockets(in: rooms, except: except) where socket.namespace == "/" {
            await self.streams.deliver(durable, to: socket)
        }
    }
}
