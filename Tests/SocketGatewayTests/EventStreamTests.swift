import Foundation
import MessengerContracts
import NIOCore
import NIOPosix
import SocketIOProtocol
import Synchronization
import Testing

@testable import SocketGateway
@testable import SocketIOServer

@Suite("A socket's durable-event stream")
struct EventStreamTests {
    /// Records each write a stream makes, as the seqs of the events in it.
    final class RecordingSocket: DurableEventSink {
        let id = "socket"
        let userID = "user"
        let eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.any()
        private let recorded = Mutex<[[Int64]]>([])
        /// Whether every write was made on the socket's loop (the stream's executor).
        let onItsLoop = Atomic(true)

        var writes: [[Int64]] { self.recorded.withLock { $0 } }

        nonisolated(nonsending) func emit(_ events: [EncodedEvent]) async {
            let seqs = events.flatMap(\.messages).compactMap { message -> Int64? in
                // A Socket.IO EVENT packet, `2[name, argument]` (Engine.IO adds its `4` below).
                guard case .text(let text) = message, text.hasPrefix("2"),
                    case .array(let packet)? = try? JSONValue.parse(String(text.dropFirst())),
                    case .number(let seq)? = packet.last?["seq"]
                else { return nil }
                return Int64(seq)
            }
            if !self.eventLoop.inEventLoop { self.onItsLoop.store(false, ordering: .relaxed) }
            self.recorded.withLock { $0.append(seqs) }
        }

        func waitForRoom() async {}

        private let closeReasons = Mutex<[String]>([])
        var closes: [String] { self.closeReasons.withLock { $0 } }

        func closeConnection(reason: String) async {
            self.closeReasons.withLock { $0.append(reason) }
        }
    }

    typealias Fetched = (afterSeq: Int64, limit: Int, acknowledged: AcknowledgedEvents)

    /// A stream whose fetch reaches the stream itself as its first argument: to push, tell of a
    /// gap or leave while a page is being fetched.
    static func stream(
        _ socket: RecordingSocket,
        fetch:
            @escaping @Sendable (
                _ stream: SocketEventStream<RecordingSocket>?, _ afterSeq: Int64, _ acknowledged: AcknowledgedEvents
            ) async -> EventStreams.Page?
    ) -> SocketEventStream<RecordingSocket> {
        let holder = Mutex<SocketEventStream<RecordingSocket>?>(nil)
        let stream = SocketEventStream(socket: socket, ordering: SeqOrdering(after: 0)) {
            _, afterSeq, _, acknowledged, _ in
            await fetch(holder.withLock { $0 }, afterSeq, acknowledged)
        }
        holder.withLock { $0 = stream }
        return stream
    }

    static func event(_ seq: Int64, redelivery: Bool = false) -> DurableEvent {
        DurableEvent(
            name: "message_created", arguments: [.object(["seq": .number(Double(seq))])], redelivery: redelivery)!
    }

    /// A user's seqs start at 1. One below it (the lowest `Int64`, from any program that
    /// publishes to Redis or the broker) trapped where the streams count one below a seq, until
    /// the sixty-second session.
    @Test("a push whose seq is below 1 is not a durable event")
    func seqsBelowOne() {
        for seq in [-9_223_372_036_854_775_808.0, -1, 0] {
            #expect(DurableEvent(name: "message_created", arguments: [.object(["seq": .number(seq)])], redelivery: false) == nil)
        }
        #expect(DurableEvent(name: "message_created", arguments: [.object(["seq": .number(1)])], redelivery: false) != nil)
    }

    /// The pushes that arrived during the replay go out after it, once each, in seq order, and
    /// together: a write for what is ready before a gap, then the gap's events with the rest.
    @Test("events that waited for the replay go out in order, without duplicates, in one write per run")
    func waitingEventsLeaveTogether() async {
        let socket = RecordingSocket()
        let fetches = Mutex<[Fetched]>([])
        let stream = SocketEventStream(socket: socket, ordering: SeqOrdering(after: 0)) {
            _, afterSeq, limit, acknowledged, _ in
            fetches.withLock { $0.append((afterSeq, limit, acknowledged)) }
            let stored: [Int64] = [1, 2, 3, 4, 5, 6, 7, 8]
            // The replay's fetch saw the log at seq 3; the rest was stored (and pushed) after it.
            let page = stored.filter { $0 > afterSeq }.prefix(afterSeq == 0 ? 3 : limit).map { Self.event($0) }
            return (Array(page), false, afterSeq == 0 ? 3 : 8)
        }
        // A new stream is busy until its replay has run: these wait.
        for seq: Int64 in [2, 4, 5, 7, 8] { await stream.receive(Self.event(seq)) }
        await stream.replay(registered: .now)
        await stream.settled()

        #expect(socket.writes == [[1, 2, 3], [4, 5], [6, 7, 8]])
        #expect(fetches.withLock { $0.map(\.afterSeq) } == [0, 5])
        #expect(fetches.withLock { $0.last?.limit } == 1)
        // The replay asks for what is unacknowledged and, pushes having come, the acknowledged
        // events from the lowest of them; a gap's fill for everything the log keeps (another
        // device may have acknowledged the missing events already).
        #expect(fetches.withLock { $0.map(\.acknowledged) } == [.above(1), .all])

        // Live again: one push, one write; a push the socket has is dropped; a redelivery goes out.
        await stream.receive(Self.event(9))
        await stream.receive(Self.event(9))
        await stream.receive(Self.event(8, redelivery: true))
        #expect(socket.writes.dropFirst(3) == [[9], [8]])
        let onItsLoop = socket.onItsLoop.load(ordering: .relaxed)
        #expect(onItsLoop, "the stream wrote from another thread than its socket's loop")
    }

    /// A push that reached the socket while its replay ran, and that another device of the user
    /// acknowledged meanwhile, is not in the replay's page (only unacknowledged events are), but
    /// the page's latest seq counts it. Until the forty-fourth session the stream took it for
    /// one the socket had, and dropped it (a review).
    @Test("an event pushed during the replay and acknowledged elsewhere meanwhile still goes out")
    func waitingEventAcknowledgedElsewhere() async {
        let socket = RecordingSocket()
        let stream = SocketEventStream(socket: socket, ordering: SeqOrdering(after: 0)) {
            _, afterSeq, _, acknowledged, _ in
            // Seqs 1 and 2 are unacknowledged; 3 and 4 came after, and the phone acknowledged them.
            let stored: [Int64] = acknowledged != .none ? [1, 2, 3, 4] : [1, 2]
            return (stored.filter { $0 > afterSeq }.map { Self.event($0) }, false, 4)
        }
        await stream.receive(Self.event(3))
        await stream.receive(Self.event(4))
        await stream.replay(registered: .now)
        await stream.settled()
        #expect(socket.writes.flatMap { $0 } == [1, 2, 3, 4])
    }

    /// A new device (lastSeq 0) of a user who acknowledged everything up to 1000, while a stale
    /// redelivery of 990 waits for the replay. Until the fifty-third session the redelivery held
    /// the replay's end below 990, and the next push's gap fetched 991 to 1000, all acknowledged
    /// (a review).
    @Test("a stale redelivery waiting for the replay goes out and does not hold the socket below it")
    func staleRedeliveryDuringTheReplay() async {
        let socket = RecordingSocket()
        let fetches = Mutex<[Fetched]>([])
        let stream = SocketEventStream(socket: socket, ordering: SeqOrdering(after: 0)) {
            _, afterSeq, limit, acknowledged, _ in
            fetches.withLock { $0.append((afterSeq, limit, acknowledged)) }
            return ([], false, 1000)  // everything acknowledged on another device
        }
        await stream.receive(Self.event(990, redelivery: true))
        await stream.replay(registered: .now)
        await stream.receive(Self.event(1001))
        await stream.settled()
        #expect(socket.writes.flatMap { $0 } == [990, 1001])
        #expect(fetches.withLock { $0.count } == 1, "the next push was taken for a gap after 990")
    }

    /// A replay of two pages: while the second is fetched, 601 is stored and another device
    /// acknowledges everything up to it, and its push comes only after the replay. Until the
    /// fifty-fourth session the second page held unacknowledged events only, none, the replay
    /// caught up through 601, and the push was dropped as one the socket had (a review).
    @Test("an event stored during a replay of several pages and acknowledged elsewhere goes out in it")
    func storedDuringTheReplayAcknowledgedElsewhere() async {
        let socket = RecordingSocket()
        let fetches = Mutex<[Fetched]>([])
        let stream = SocketEventStream(socket: socket, ordering: SeqOrdering(after: 0)) {
            _, afterSeq, limit, acknowledged, _ in
            fetches.withLock { $0.append((afterSeq, limit, acknowledged)) }
            if afterSeq == 0 { return ((1...500).map { Self.event($0) }, true, 600) }
            // Delivery's answer: nothing is unacknowledged; 601 is above the bound asked for.
            guard case .above(let bound) = acknowledged else { return ([], false, 601) }
            return ([601].filter { $0 > max(afterSeq, bound) }.map { Self.event($0) }, false, 601)
        }
        await stream.replay(registered: .now)
        await stream.receive(Self.event(601))  // its push, late
        await stream.receive(Self.event(602))
        await stream.settled()
        #expect(socket.writes.flatMap { $0 } == Array(1...500) + [601, 602])
        #expect(fetches.withLock { $0.map(\.acknowledged) } == [.none, .above(600)])
        #expect(fetches.withLock { $0.count } == 2, "the push after the replay was taken for a gap")
    }

    /// Three pages. Delivery as it answers: 1...1000 stored before the first page's read, 1...500
    /// unacknowledged then; another device acknowledges up to 1001 while the second page is
    /// read (1001 stored meanwhile), and 1002 is stored, unacknowledged, before the third. The
    /// pages after the first all ask from the first page's latest seq: 501...1000, stored
    /// before the cut and acknowledged before their page, are left out; 1001 and 1002 go out.
    @Test("every page after the first asks for the acknowledged events above the first page's latest seq, and only those")
    func replayBoundStaysTheFirstPages() async {
        let socket = RecordingSocket()
        let fetches = Mutex<[Fetched]>([])
        let stream = SocketEventStream(socket: socket, ordering: SeqOrdering(after: 0)) {
            _, afterSeq, limit, acknowledged, _ in
            let count = fetches.withLock { fetched in
                fetched.append((afterSeq, limit, acknowledged))
                return fetched.count
            }
            switch count {
            case 1: return ((1...500).map { Self.event($0) }, true, 1000)
            case 2:
                guard case .above(let bound) = acknowledged else { return ([], false, 1001) }
                return ([1001].filter { $0 > max(afterSeq, bound) }.map { Self.event($0) }, true, 1001)
            default:
                guard case .above(let bound) = acknowledged else { return ([Self.event(1002)], false, 1002) }
                return ([1001, 1002].filter { $0 > max(afterSeq, bound) }.map { Self.event($0) }, false, 1002)
            }
        }
        await stream.replay(registered: .now)
        await stream.receive(Self.event(1001))  // late pushes: the socket has them
        await stream.receive(Self.event(1002))
        await stream.settled()
        #expect(socket.writes.flatMap { $0 } == Array(1...500) + [1001, 1002])
        #expect(fetches.withLock { $0.map(\.acknowledged) } == [.none, .above(1000), .above(1000)])
        #expect(fetches.withLock { $0.map(\.afterSeq) } == [0, 500, 1001])
    }

    /// Pushes 1...300 came while the socket waited for its replay, past the bound of waiting
    /// events (only the newest kept), and another device acknowledged them all; 301 is
    /// unacknowledged. Until the fifty-fourth session the page held 301 alone, which took the
    /// socket past 1...299, and they were lost (a review).
    @Test("pushes collapsed away while the replay waited, acknowledged elsewhere, are in its page")
    func collapsedPushesInThePage() async {
        let socket = RecordingSocket()
        let fetches = Mutex<[Fetched]>([])
        let stream = SocketEventStream(socket: socket, ordering: SeqOrdering(after: 0)) {
            _, afterSeq, limit, acknowledged, _ in
            fetches.withLock { $0.append((afterSeq, limit, acknowledged)) }
            let bound: Int64 = if case .above(let bound) = acknowledged { bound } else { 300 }
            let events = (Int64(1)...301).filter { $0 > max(afterSeq, min(bound, 300)) }.prefix(limit)
            return (events.map { Self.event($0) }, events.last.map { $0 < 301 } ?? false, 301)
        }
        for seq in 1...300 { await stream.receive(Self.event(Int64(seq))) }
        await stream.replay(registered: .now)
        await stream.settled()
        #expect(socket.writes.flatMap { $0 } == Array(1...301))
        #expect(fetches.withLock { $0.first?.acknowledged } == .above(0))
    }

    @Test("past the bound of waiting events only the newest waits; the rest come from the log, in order")
    func waitingEventsBounded() async {
        let socket = RecordingSocket()
        let count = Int64(SocketEventStream<RecordingSocket>.maximumWaiting + 100)
        let fetches = Mutex<[Fetched]>([])
        let stream = SocketEventStream(socket: socket, ordering: SeqOrdering(after: 0)) {
            _, afterSeq, limit, acknowledged, _ in
            fetches.withLock { $0.append((afterSeq, limit, acknowledged)) }
            // The replay's fetch saw an empty log; the rest was stored (and pushed) after it.
            guard acknowledged == .all else { return ([], false, 0) }
            let page = (afterSeq + 1...min(afterSeq + Int64(limit), count)).map { Self.event($0) }
            return (page, afterSeq + Int64(limit) < count, count)
        }
        // A new stream is busy until its replay has run: these wait, past the bound.
        for seq in 1...count { await stream.receive(Self.event(seq)) }
        await stream.replay(registered: .now)
        await stream.settled()
        #expect(socket.writes.flatMap { $0 } == Array(1...count))
        #expect(fetches.withLock { $0.map(\.acknowledged) } == [.above(0), .all])
        #expect(socket.closes.isEmpty)
    }

    /// Past the bound, the waiting events collapse to the newest; when another device
    /// acknowledged them all meanwhile, the replay's page is empty and its latest seq counts
    /// them. Until the forty-sixth session the replay caught up through the lowest seq still
    /// waiting, past the collapsed ones, and the socket never got them (a review).
    @Test("events collapsed away while the replay ran, acknowledged elsewhere meanwhile, still go out")
    func collapsedEventsAcknowledgedElsewhere() async {
        let socket = RecordingSocket()
        let count = Int64(SocketEventStream<RecordingSocket>.maximumWaiting + 100)
        let stream = SocketEventStream(socket: socket, ordering: SeqOrdering(after: 0)) {
            _, afterSeq, limit, acknowledged, _ in
            // Every event was acknowledged by another device before the replay's fetch.
            guard acknowledged != .none else { return ([], false, count) }
            let page = (afterSeq + 1...min(afterSeq + Int64(limit), count)).map { Self.event($0) }
            return (page, afterSeq + Int64(limit) < count, count)
        }
        for seq in 1...count { await stream.receive(Self.event(seq)) }
        await stream.replay(registered: .now)
        await stream.settled()
        #expect(socket.writes.flatMap { $0 } == Array(1...count))
    }

    @Test("a lastSeq past the user's latest seq comes down to it: the events after it are not dropped")
    func lastSeqAheadOfTheLog() async {
        let socket = RecordingSocket()
        let stream = SocketEventStream(socket: socket, ordering: SeqOrdering(after: 100)) { _, afterSeq, _, _, _ in
            #expect(afterSeq == 100)
            return ([], false, 2)  // the user's log ends at seq 2
        }
        await stream.replay(registered: .now)
        await stream.receive(Self.event(3))
        await stream.receive(Self.event(2))
        #expect(socket.writes == [[3]], "seq 3 goes out; seq 2 is one the socket had")
    }

    /// The user's latest seq, read by the first page, counts the events stored while the socket
    /// waited for its replay; their pushes wait in the stream. Until the fifty-eighth session a
    /// `lastSeq` past the latest came down to the latest only, and those pushes were dropped as
    /// events the socket had (a review).
    @Test("a lastSeq past the user's latest seq: the events pushed while the replay waited still go out, in order")
    func lastSeqAheadOfTheLogWithPushesWaiting() async {
        let socket = RecordingSocket()
        let stream = SocketEventStream(socket: socket, ordering: SeqOrdering(after: 5000)) { _, afterSeq, _, _, _ in
            #expect(afterSeq == 5000)
            return ([], false, 15)  // seqs 11 to 15 were stored after the socket registered
        }
        for seq in Int64(11)...15 { await stream.receive(Self.event(seq)) }
        await stream.replay(registered: .now)
        await stream.settled()
        await stream.receive(Self.event(16))
        #expect(socket.writes.flatMap { $0 } == Array(11...16))
    }

    @Test("a lastSeq within the log stays: a late copy of an event the client has does not take the socket back")
    func latePushAtOrBelowLastSeq() async {
        let socket = RecordingSocket()
        let stream = SocketEventStream(socket: socket, ordering: SeqOrdering(after: 7)) { _, afterSeq, _, _, _ in
            #expect(afterSeq == 7)
            return ([], false, 7)
        }
        // Seq 7 reached the client through another gateway; this gateway's copy comes late.
        await stream.receive(Self.event(7))
        await stream.replay(registered: .now)
        await stream.settled()
        await stream.receive(Self.event(8))
        #expect(socket.writes.flatMap { $0 } == [8])
    }

    @Test("a replay that ends with everything acknowledged leaves no gap before the next push")
    func everythingAcknowledged() async {
        let socket = RecordingSocket()
        let fetches = Mutex<[Fetched]>([])
        let stream = SocketEventStream(socket: socket, ordering: SeqOrdering(after: 0)) {
            _, afterSeq, limit, acknowledged, _ in
            fetches.withLock { $0.append((afterSeq, limit, acknowledged)) }
            return ([], false, 40)  // 40 events, all acknowledged on another device
        }
        await stream.replay(registered: .now)
        await stream.receive(Self.event(41))
        #expect(socket.writes == [[41]])
        #expect(fetches.withLock { $0.count } == 1, "the first push was taken for a gap and 40 old events fetched")
    }

    @Test("a gap wider than a page is fetched page by page, up to the push that opened it")
    func wideGap() async {
        let socket = RecordingSocket()
        let fetches = Mutex<[Fetched]>([])
        let stream = SocketEventStream(socket: socket, ordering: SeqOrdering(after: 0)) {
            _, afterSeq, limit, acknowledged, _ in
            fetches.withLock { $0.append((afterSeq, limit, acknowledged)) }
            guard acknowledged != .none else { return ([], false, 0) }  // the replay: nothing yet
            let page = (afterSeq + 1...min(afterSeq + Int64(limit), 1_201)).map { Self.event($0) }
            return (page, afterSeq + Int64(limit) < 1_201, 1_201)
        }
        await stream.replay(registered: .now)
        await stream.receive(Self.event(1_201))
        await stream.settled()
        #expect(socket.writes.flatMap { $0 } == Array(1...1_201))
        // The first two pages in slices of 32 (paced like a replay), the last with the push.
        #expect(socket.writes.count == 16 + 16 + 1)
        #expect(fetches.withLock { $0.dropFirst().map(\.afterSeq) } == [0, 500, 1_000])
        #expect(fetches.withLock { $0.dropFirst().map(\.limit) } == [500, 500, 200])
        #expect(socket.closes.isEmpty)
    }

    @Test("when a gap cannot be fetched, nothing moves past it: the connection is closed for the client to reconnect")
    func gapUnavailable() async {
        let socket = RecordingSocket()
        let stream = SocketEventStream(socket: socket, ordering: SeqOrdering(after: 0)) { _, _, _, acknowledged, _ in
            acknowledged != .none ? nil : ([Self.event(1)], false, 1)
        }
        await stream.replay(registered: .now)
        await stream.receive(Self.event(3))
        await stream.receive(Self.event(4))
        await stream.settled()
        #expect(socket.writes == [[1]], "seq 3 went out past the missing seq 2")
        #expect(socket.closes == ["missing events unavailable"])
    }

    @Test("when the replay cannot be fetched, the connection is closed for the client to reconnect")
    func replayUnavailable() async {
        let socket = RecordingSocket()
        let stream = SocketEventStream(socket: socket, ordering: SeqOrdering(after: 5)) { _, _, _, _, _ in nil }
        await stream.receive(Self.event(9))
        await stream.replay(registered: .now)
        await stream.receive(Self.event(10))
        #expect(socket.writes.isEmpty)
        #expect(socket.closes == ["replay unavailable"])
    }

    @Test("a gap's fetch does not hold the caller: the push consumer goes on to other sockets meanwhile")
    func gapDoesNotHoldTheCaller() async {
        let socket = RecordingSocket()
        let (answer, delivery) = AsyncStream.makeStream(of: Void.self)
        let stream = SocketEventStream(socket: socket, ordering: SeqOrdering(after: 0)) {
            _, afterSeq, _, acknowledged, _ in
            guard acknowledged != .none else { return ([], false, 0) }
            for await _ in answer { break }  // delivery is slow to answer
            return ([Self.event(1), Self.event(2)].filter { $0.seq > afterSeq }, false, 3)
        }
        await stream.replay(registered: .now)
        await stream.receive(Self.event(3))  // returns while the gap's fetch waits
        await stream.receive(Self.event(4))
        #expect(socket.writes.isEmpty)
        delivery.yield()
        await stream.settled()
        #expect(socket.writes == [[1, 2, 3, 4]])
    }

    /// The gateway's Redis subscriber was away: pushes other gateways published meanwhile never
    /// came, and another device acknowledged them. Until the forty-seventh session the socket
    /// got them only when the user's next event showed the gap.
    @Test("after a fan-out gap a live socket fetches the events it missed, acknowledged ones too")
    func missedPushesFetched() async {
        let socket = RecordingSocket()
        let fetches = Mutex<[Fetched]>([])
        let asked = ContinuousClock.now
        let notBefore = Mutex<[ContinuousClock.Instant]>([])
        let stream = SocketEventStream(socket: socket, ordering: SeqOrdering(after: 0)) {
            _, afterSeq, limit, acknowledged, since in
            fetches.withLock { $0.append((afterSeq, limit, acknowledged)) }
            notBefore.withLock { $0.append(since) }
            // 1 and 2 unacknowledged at the replay; 3 pushed; 4 and 5 missed and acknowledged.
            guard acknowledged != .none else { return ([Self.event(1), Self.event(2)], false, 2) }
            return ([4, 5].filter { $0 > afterSeq }.map { Self.event($0) }, false, 5)
        }
        await stream.replay(registered: .now)
        await stream.receive(Self.event(3))
        await stream.lookForMissedEvents(storedBefore: asked)
        await stream.settled()
        await stream.receive(Self.event(6))
        #expect(socket.writes == [[1, 2], [3], [4, 5], [6]])
        #expect(fetches.withLock { $0.map(\.afterSeq) } == [0, 3])
        #expect(fetches.withLock { $0.map(\.acknowledged) } == [.none, .all])
        #expect(notBefore.withLock { $0.last } == asked, "sockets of one user would not share the page")
        #expect(socket.closes.isEmpty)
    }

    /// The replay ends with the user's latest seq, past an event whose push missed the socket
    /// while the replay ran and which another device acknowledged: it is in no page, and
    /// caught up through it the socket would never get it.
    @Test("a fan-out gap during the replay: the events stored since the replay began are fetched after it")
    func missedPushesDuringTheReplay() async {
        let socket = RecordingSocket()
        let stream = Self.stream(socket) { stream, afterSeq, acknowledged in
            if afterSeq == 0 { return ([Self.event(1)], true, 2) }
            guard case .above(let bound) = acknowledged else {
                return ([2, 3].filter { $0 > afterSeq }.map { Self.event($0) }, false, 3)
            }
            // While the second page is fetched, 3 is stored, pushed (and missed), and acknowledged:
            // the page holds it, above the first page's latest seq.
            await stream?.lookForMissedEvents(storedBefore: .now)
            return ([2, 3].filter { $0 > afterSeq && ($0 == 2 || $0 > bound) }.map { Self.event($0) }, false, 3)
        }
        await stream.replay(registered: .now)
        await stream.settled()
        #expect(socket.writes.flatMap { $0 } == [1, 2, 3])
    }

    /// Seq 2 was stored before the socket registered and acknowledged on another device: the
    /// replay skips it, as always. Seq 3 was stored after, its push missed the socket in a gap of
    /// the fan-out, and another device acknowledged it before the replay's first page: the page
    /// counts it in its latest seq, and catching up through that (the first version of the
    /// look, in this session) lost it. The look asks delivery for the acknowledged events stored
    /// since the socket registered (about: less the clocks' margin), which is 3 alone (the
    /// session's reviews).
    @Test("a fan-out gap during the replay: the acknowledged events stored since the socket registered go out, older ones do not")
    func missedPushesBeforeTheFirstPage() async {
        let socket = RecordingSocket()
        let registered = Date()
        let asked = Mutex<[AcknowledgedEvents]>([])
        let stream = Self.stream(socket) { stream, afterSeq, acknowledged in
            guard acknowledged != .none else {
                await stream?.lookForMissedEvents(storedBefore: .now)
                return ([Self.event(1)].filter { $0.seq > afterSeq }, false, 3)
            }
            asked.withLock { $0.append(acknowledged) }
            // Delivery's answer: 2 was stored an hour ago, 3 just now.
            let stored = acknowledged == .all ? [Self.event(2), Self.event(3)] : [Self.event(3)]
            return (stored.filter { $0.seq > afterSeq }, false, 3)
        }
        await stream.replay(registered: .now)
        await stream.settled()
        #expect(socket.writes.flatMap { $0 } == [1, 3])
        guard case .storedSince(let since)? = asked.withLock({ $0.first }) else {
            Issue.record("asked for \(asked.withLock { $0 })")
            return
        }
        #expect(since <= registered && since > registered - 10, "asked since \(since)")
        // Past the replay's end the socket is as any other: a gap's fill asks for everything.
        await stream.receive(Self.event(5))
        await stream.settled()
        #expect(asked.withLock { $0.count } == 2 && asked.withLock { $0.last } == .all)
        #expect(socket.writes.flatMap { $0 } == [1, 3, 5])
    }

    /// Seq 2 came live while the replay ran and another device acknowledged it before the page
    /// was fetched; the page holds 1 and 3. Until the forty-seventh session the page's 3 took
    /// the socket past 2, and the waiting push was then dropped as one it had (a review).
    @Test("a push that waited during the replay goes out between the page's events around it")
    func waitingPushAmongThePage() async {
        let socket = RecordingSocket()
        let stream = Self.stream(socket) { stream, afterSeq, _ in
            await stream?.receive(Self.event(2))
            return ([Self.event(1), Self.event(3)].filter { $0.seq > afterSeq }, false, 3)
        }
        await stream.replay(registered: .now)
        await stream.settled()
        #expect(socket.writes.flatMap { $0 } == [1, 2, 3])
    }

    /// A socket that reads slowly: ``waitForRoom()`` waits until the room is opened.
    final class SlowReadingSocket: DurableEventSink {
        let recording = RecordingSocket()
        private let room: AsyncStream<Void>
        private let opening: AsyncStream<Void>.Continuation
        var id: String { self.recording.id }
        var userID: String { self.recording.userID }
        var eventLoop: any EventLoop { self.recording.eventLoop }

        init() {
            (self.room, self.opening) = AsyncStream.makeStream(of: Void.self)
        }

        nonisolated(nonsending) func emit(_ events: [EncodedEvent]) async { await self.recording.emit(events) }
        func waitForRoom() async { for await _ in self.room { break } }
        func openRoom() { self.opening.finish() }
        func closeConnection(reason: String) async { await self.recording.closeConnection(reason: reason) }
    }

    /// The gateway looks for missed events on its sockets 16 at a time, and waits for each look.
    /// Until the fiftieth session a look sent what it found at the socket's pace, and 16 slow
    /// readers held every other socket's look for minutes (a review).
    @Test(
        "a look for missed events returns after its first fetch; a slow reader gets the rest at its pace", .timeLimit(.minutes(1))
    )
    func missedPushesPacedOutsideTheSweep() async {
        let socket = SlowReadingSocket()
        let stream = SocketEventStream(socket: socket, ordering: SeqOrdering(after: 0)) {
            _, afterSeq, _, acknowledged, _ in
            guard acknowledged != .none else { return ([], false, 0) }
            let events = (afterSeq + 1...min(afterSeq + 100, 300)).map { Self.event($0) }
            return (events, afterSeq + 100 < 300, 300)
        }
        await stream.replay(registered: .now)
        await stream.lookForMissedEvents(storedBefore: .now)
        #expect(socket.recording.writes.flatMap { $0 }.count < 300)
        socket.openRoom()
        await stream.settled()
        #expect(socket.recording.writes.flatMap { $0 } == Array(1...300))
        #expect(socket.recording.closes.isEmpty)
    }

    @Test("a fan-out gap while a gap is being filled: the socket looks for missed events once the fill is done")
    func missedPushesWhileBusy() async {
        let socket = RecordingSocket()
        let (answer, delivery) = AsyncStream.makeStream(of: Void.self)
        let fetches = Mutex<[Int64]>([])
        let stream = SocketEventStream(socket: socket, ordering: SeqOrdering(after: 0)) {
            _, afterSeq, _, acknowledged, _ in
            guard acknowledged != .none else { return ([], false, 0) }
            fetches.withLock { $0.append(afterSeq) }
            if afterSeq == 0 { for await _ in answer { break } }  // the gap's fill waits for delivery
            return ([1, 2, 4].filter { $0 > afterSeq }.map { Self.event($0) }.filter { $0.seq != 3 }, false, 4)
        }
        await stream.replay(registered: .now)
        await stream.receive(Self.event(3))  // a gap: 1 and 2 are fetched
        await stream.lookForMissedEvents(storedBefore: .now)  // returns at once: the socket is busy
        #expect(socket.writes.isEmpty)
        delivery.yield()
        await stream.settled()
        #expect(socket.writes.flatMap { $0 } == [1, 2, 3, 4])
        #expect(fetches.withLock { $0 } == [0, 3])
    }

    @Test("a fetch that fails is asked again before the connection is closed")
    func fetchAskedAgain() async {
        let socket = RecordingSocket()
        let failures = Mutex(1)
        let stream = SocketEventStream(socket: socket, ordering: SeqOrdering(after: 0)) { _, afterSeq, _, _, _ in
            let fail = failures.withLock { left in
                defer { left -= 1 }
                return left > 0
            }
            return fail ? nil : ([Self.event(1), Self.event(2)].filter { $0.seq > afterSeq }, false, 2)
        }
        await stream.replay(registered: .now)
        #expect(socket.writes == [[1, 2]])
        #expect(socket.closes.isEmpty)
    }

    @Test("a socket that leaves stops its replay at the next step: no more pages fetched or written, no close")
    func leavingStopsTheReplay() async {
        let socket = RecordingSocket()
        let fetched = Mutex(0)
        let stream = Self.stream(socket) { stream, afterSeq, _ in
            let count = fetched.withLock { count in
                count += 1
                return count
            }
            // The socket leaves while its second page is being fetched.
            if count == 2 { stream?.leave() }
            return ([Self.event(afterSeq + 1)], true, 10)
        }
        await stream.replay(registered: .now)
        await stream.receive(Self.event(5))
        await stream.settled()
        #expect(socket.writes == [[1]])
        #expect(fetched.withLock { $0 } == 2)
        #expect(socket.closes.isEmpty)
    }

    /// Until the fifty-second session an open socket got an unacknowledged event again only from
    /// delivery's retries, which end after about 6 minutes (a review).
    @Test("what the socket was sent and did not acknowledge goes out again once due; what any device acknowledged does not")
    func unacknowledgedEventsGoOutAgain() async {
        let socket = RecordingSocket()
        // The user's unacknowledged events, as delivery has them.
        let unacknowledged = Mutex<[Int64]>([1, 2, 3])
        let stream = Self.stream(socket) { _, afterSeq, acknowledged in
            #expect(acknowledged == .none)
            return (unacknowledged.withLock { $0 }.filter { $0 > afterSeq }.map { Self.event($0) }, false, 3)
        }
        await stream.replay(registered: .now)
        #expect(socket.writes == [[1, 2, 3]])
        #expect(stream.mayHaveUnacknowledged)
        // Not due yet: nothing is fetched or sent.
        await stream.pushAgainIfUnacknowledged(now: .now, after: .seconds(10), atMost: .seconds(60))
        // The socket acknowledges 1, another device 2: 3 goes out again once due.
        unacknowledged.withLock { $0 = [3] }
        await stream.acknowledged(through: 1)
        await stream.pushAgainIfUnacknowledged(now: .now + .seconds(11), after: .seconds(10), atMost: .seconds(60))
        await stream.settled()
        #expect(socket.writes == [[1, 2, 3], [3]])
        // Pushed again, it waits twice as long; then found acknowledged, it is forgotten.
        await stream.pushAgainIfUnacknowledged(now: .now + .seconds(11), after: .seconds(10), atMost: .seconds(60))
        unacknowledged.withLock { $0 = [] }
        await stream.pushAgainIfUnacknowledged(now: .now + .seconds(21), after: .seconds(10), atMost: .seconds(60))
        await stream.settled()
        #expect(socket.writes == [[1, 2, 3], [3]])
        #expect(!stream.mayHaveUnacknowledged)
        // Live pushes still go out after it.
        await stream.receive(Self.event(4))
        await stream.settled()
        #expect(socket.writes == [[1, 2, 3], [3], [4]])
    }
}
