import Synchronization

/// Which local sockets are in which rooms.
public final class RoomRegistry: Sendable {
    private let rooms = Mutex<[String: [String: SocketIOSocket]]>([:])

    public init() {}

    func join(_ socket: SocketIOSocket, _ room: String) {
        self.rooms.withLock { $0[room, default: [:]][socket.id] = socket }
    }

    func leaveAll(_ socket: SocketIOSocket, rooms names: [String]) {
        self.rooms.withLock { rooms in
            for name in names {
                rooms[name]?.removeValue(forKey: socket.id)
                if rooms[name]?.isEmpty == true { rooms.removeValue(forKey: name) }
            }
        }
    }

    /// The sockets in any of `rooms` (all sockets when `rooms` is empty), minus those in
    /// `except`.
    public func sockets(in rooms: [String], except: [String] = []) -> [SocketIOSocket] {
        self.rooms.withLock { registry in
            let excluded = Set(except.flatMap { registry[$0]?.keys.map { $0 } ?? [] })
            var found: [String: SocketIOSocket] = [:]
            let names = rooms.isEmpty ? Array(registry.keys) : rooms
            for name in names {
                for (id, socket) in registry[name] ?? [:] where !excluded.contains(id) { found[id] = socket }
            }
            return Array(found.values)
        }
    }

    /// How many sockets are in `room` here.
    public func count(in room: String) -> Int { self.rooms.withLock { $0[room]?.count ?? 0 } }
}
