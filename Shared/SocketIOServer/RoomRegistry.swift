import Synchronization

/// Which local sockets are in which rooms.
///
/// Every socket is also in the room named after its own id, as on the reference server (which
/// joins each socket to `socket.id`): a stock `@socket.io/redis-emitter` reaches one socket with
/// `to(socketId)` and leaves one out with `except(socketId)`. That room is a lookup by id, not an
/// entry of its own per socket (until the sixtieth session there was no such room, and those
/// emits reached no one or everyone; a review).
public final class RoomRegistry: Sendable {
    private struct State {
        var rooms: [String: [String: SocketIOSocket]] = [:]
        /// The sockets that joined a room, by id: the rooms named after them.
        var byID: [String: SocketIOSocket] = [:]

        /// The sockets in the room `name`, the socket whose id it is included.
        func members(of name: String) -> [String: SocketIOSocket] {
            var members = self.rooms[name] ?? [:]
            if let socket = self.byID[name] { members[socket.id] = socket }
            return members
        }
    }

    private let state = Mutex(State())

    public init() {}

    func join(_ socket: SocketIOSocket, _ room: String) {
        self.state.withLock { state in
            state.rooms[room, default: [:]][socket.id] = socket
            state.byID[socket.id] = socket
        }
    }

    /// Takes `socket` out of the rooms `names` and out of its own.
    func leaveAll(_ socket: SocketIOSocket, rooms names: [String]) {
        self.state.withLock { state in
            for name in names {
                state.rooms[name]?.removeValue(forKey: socket.id)
                if state.rooms[name]?.isEmpty == true { state.rooms.removeValue(forKey: name) }
            }
            state.byID.removeValue(forKey: socket.id)
        }
    }

    /// The sockets in any of `rooms` (all sockets when `rooms` is empty), minus those in
    /// `except`. A socket's id names a room holding it alone.
    public func sockets(in rooms: [String], except: [String] = []) -> [SocketIOSocket] {
        self.state.withLock { state in
            let excluded = Set(except.flatMap { state.members(of: $0).keys })
            guard !rooms.isEmpty else { return state.byID.values.filter { !excluded.contains($0.id) } }
            var found: [String: SocketIOSocket] = [:]
            for name in rooms {
                for (id, socket) in state.members(of: name) where !excluded.contains(id) { found[id] = socket }
            }
            return Array(found.values)
        }
    }

    /// How many sockets are in `room` here.
    public func count(in room: String) -> Int { self.state.withLock { $0.members(of: room).count } }
}
