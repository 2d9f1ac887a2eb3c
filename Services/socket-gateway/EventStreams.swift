import DequeModule
import Foundation
import Logging
import MessengerAMQP
import MessengerContracts
import SocketIOProtocol
import SocketIOServer
import Synchronization

/// A durable event on its way to a socket: the client event name and its one argument
/// `{eventId, seq, type, occurredAt, data}`, encoded once for every socket it goes to.
struct DurableEvent: Sendable {
    var name: String
    var seq: Int64
    var packet: EncodedEvent
    var redelivery: Bool

    /// From a push's event name and arguments; nil when it is not a durable event.
    init?(name: String, arguments: [JSONValue], redelivery: Bool) {
        guard ClientEvent.durable.contains(name), arguments.count == 1, case .number(let seq)? = arguments[0]["seq"],
            let exact = Int64(exactly: seq)
        else { return nil }
        self.name = name
        self.seq = exact
        self.packet = EncodedEvent(name, arguments)
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
/// Replays run at most ``maximumConcurrentReplays`` at a time, the others wait in line: a
/// reconnect storm asks delivery for its pages at a pace it can serve, and the gateway's memory
/// does not swell with thousands of replays in flight at once.
final class EventStreams: Sendable {
    static let maximumConcurrentReplays = 64

    private struct ReplayLine {
        var running = 0
        var waiting: Deque<SocketEventStream> = []
    }

    private let streams = Mutex<[String: SocketEventStream]>([:])
    private let replays = Mutex(ReplayLine())
    private let rpc: RPCClient
    private let logger: Logger

    init(rpc: RPCClient, logger: Logger) {
        self.rpc = rpc
        self.logger = logger
    }

    /// Starts the socket's stream with its replay after `lastSeq`.
    func connected(_ socket: SocketIOSocket, lastSeq: Int64) {
        let stream = SocketEventStream(socket: socket, ordering: SeqOrdering(after: lastSeq), fetch: self.fetch)
        self.streams.withLock { $0[socket.id] = stream }
        let startsNow = self.replays.withLock { line in
            guard line.running < Self.maximumConcurrentReplays else {
                line.waiting.append(stream)
                return false
            }
            line.running += 1
            return true
        }
        if startsNow { Task { await self.runReplays(startingWith: stream) } }
    }

    /// Replays `first`, then whatever waits in line, until the line is empty.
    private func runReplays(startingWith first: SocketEventStream) async {
        var next: SocketEventStream? = first
        while let stream = next {
            // A socket that left while it waited needs no replay.
            if self.streams.withLock({ $0[stream.socketID] }) === stream { await stream.replay() }
            next = self.replays.withLock { line in
                guard let waiting = line.waiting.popFirst() else {
                    line.running -= 1
                    return nil
                }
                return waiting
            }
        }
    }

    func disconnected(_ socket: SocketIOSocket) {
        _ = self.streams.withLock { $0.removeValue(forKey: socket.id) }
    }

    /// Hands a live event to a socket's stream. A socket whose stream is not started yet gets
    /// it from its replay instead (delivery stores every event before pushing it).
    func deliver(_ event: DurableEvent, to socket: SocketIOSocket) async {
        guard let stream = self.streams.withLock({ $0[socket.id] }) else { return }
        await stream.receive(event)
    }

    /// One page of the user's unacknowledged events after `afterSeq`, and whether more follow.
    @Sendable private func fetch(user: String, afterSeq: Int64, limit: Int) async -> (events: [DurableEvent], hasMore: Bool)? {
        do {
            let reply = try await self.rpc.callRaw(
                DeliveryMessage.sync, to: .delivery, payload: SyncRequest(afterSeq: afterSeq, limit: limit),
                actor: UUID(text: user))
            let json = try JSONValue.parse(String(decoding: reply, as: UTF8.self))
            guard json["ok"] == .bool(true), case .array(let events)? = json["data"]?["events"] else {
                self.logger.warning("replay refused", metadata: ["reply": "\(json.jsonText.prefix(200))"])
                return nil
            }
            return (events.compactMap(DurableEvent.init(fetched:)), json["data"]?["hasMore"] == .bool(true))
        } catch {
            self.logger.warning("fetching events to replay failed", metadata: ["error": "\(error)"])
            return nil
        }
    }
}

/// One socket's durable events, kept in order by ``SeqOrdering``: handled one at a time (a
/// replay or a gap fill finishes before the next push is looked at).
actor SocketEventStream {
    typealias Fetch =
        @Sendable (_ user: String, _ afterSeq: Int64, _ limit: Int) async -> (
            events: [DurableEvent], hasMore: Bool
        )?

    static let pageSize = 500

    private let socket: SocketIOSocket
    private let fetch: Fetch
    nonisolated var socketID: String { self.socket.id }
    private var ordering: SeqOrdering
    private var waiting: [DurableEvent] = []
    /// True while the replay, or a batch of waiting events, is being handled.
    private var busy = true

    init(socket: SocketIOSocket, ordering: SeqOrdering, fetch: @escaping Fetch) {
        self.socket = socket
        self.ordering = ordering
        self.fetch = fetch
    }

    /// Sends every unacknowledged event after the socket's `lastSeq`, then what arrived
    /// meanwhile.
    func replay() async {
        while let page = await self.fetch(self.socket.userID, self.ordering.delivered, Self.pageSize) {
            for event in page.events where self.ordering.accept(fetched: event.seq) {
                await self.socket.emit(event.packet)
            }
            guard page.hasMore, !page.events.isEmpty else { break }
        }
        await self.drain()
    }

    func receive(_ event: DurableEvent) async {
        self.waiting.append(event)
        guard !self.busy else { return }
        self.busy = true
        await self.drain()
    }

    private func drain() async {
        while !self.waiting.isEmpty {
            let event = self.waiting.removeFirst()
            await self.handle(event)
        }
        self.busy = false
    }

    private func handle(_ event: DurableEvent) async {
        switch self.ordering.decide(seq: event.seq, redelivery: event.redelivery) {
        case .emit:
            await self.socket.emit(event.packet)
        case .drop:
            break
        case .fillGap(let after):
            let missing = Int(min(Int64(Self.pageSize), event.seq - after))
            if let page = await self.fetch(self.socket.userID, after, missing) {
                for fetched in page.events where fetched.seq < event.seq && self.ordering.accept(fetched: fetched.seq) {
                    await self.socket.emit(fetched.packet)
                }
            }
            if self.ordering.decideAfterGap(seq: event.seq) {
                await self.socket.emit(event.packet)
            }
        }
    }
}

/// Delivers an emit to this gateway's own sockets: durable events through each socket's
/// ``SocketEventStream``, anything else (`typing`, pushes of other kinds) straight away.
struct LocalDelivery: Sendable {
    let server: SocketIOServer
    let streams: EventStreams

    func emit(_ event: String, _ arguments: [JSONValue], rooms: [String], except: [String], flags: [String: Bool]) async {
        guard let durable = DurableEvent(name: event, arguments: arguments, redelivery: flags["redelivery"] == true) else {
            await self.server.emit(event, arguments, rooms: rooms, except: except)
            return
        }
        for socket in self.server.rooms.sockets(in: rooms, except: except) where socket.namespace == "/" {
            await self.streams.deliver(durable, to: socket)
        }
    }
}
