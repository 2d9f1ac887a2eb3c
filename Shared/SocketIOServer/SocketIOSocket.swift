import Foundation
import NIOCore
import SocketIOProtocol

/// A connected Socket.IO socket (one namespace of one connection): what event handlers and rooms
/// hold.
public final class SocketIOSocket: Sendable {
    /// The Socket.IO socket id sent in the CONNECT reply.
    public let id: String
    /// Who authenticated this socket (the access token's user id).
    public let userID: String
    /// The login session of the credential it authenticated with, if it named one.
    public let loginSession: UUID?
    public let namespace: String
    let session: EngineSession
    /// The connection that owns the socket, for a server-side disconnect. A strong reference
    /// (a weak one costs every connection a side table): the cycle it makes with the
    /// connection's own `sockets` ends when the socket leaves, which every disconnect and close
    /// does.
    private let connection: SocketIOConnection?

    init(
        id: String, principal: SocketPrincipal, namespace: String, session: EngineSession, connection: SocketIOConnection?
    ) {
        self.id = id
        self.userID = principal.userID
        self.loginSession = principal.loginSession
        self.namespace = namespace
        self.session = session
        self.connection = connection
    }

    /// The event loop the socket's connection runs on. An actor that only talks to this socket
    /// can run there too (its executor), so its sends reach the connection without a hop.
    public var eventLoop: any EventLoop { self.session.eventLoop }

    /// Sends an event to this socket.
    public func emit(_ event: String, _ arguments: [JSONValue]) async {
        await self.send(.event(event, arguments, namespace: self.namespace))
    }

    /// Sends events encoded before, in order, in one write to the connection. It runs on the
    /// caller's executor: from the connection's loop it reaches the session without a hop.
    public nonisolated(nonsending) func emit(_ events: [EncodedEvent]) async {
        var messages: [EngineMessage] = []
        for event in events where event.namespace == self.namespace { messages += event.messages }
        guard !messages.isEmpty else { return }
        await self.session.send(messages)
    }

    /// Returns once what was sent to this socket is mostly on its way (see
    /// ``EngineSession/waitForRoom()``): a sender of many events in a row paces itself on the
    /// client.
    public func waitForRoom() async {
        await self.session.waitForRoom()
    }

    func send(_ packet: SocketIOPacket) async {
        await self.session.send(Self.messages(for: packet))
    }

    static func messages(for packet: SocketIOPacket) -> [EngineMessage] {
        let (text, attachments) = packet.encode()
        return [.text(text)] + attachments.map { .binary($0) }
    }

    /// Closes the socket's connection as a transport failure: unlike ``disconnect()``, stock
    /// clients reconnect (with their `auth`, so with their `lastSeq`). The client is not told:
    /// python-socketio takes an Engine.IO close packet for the server's goodbye and never
    /// reconnects (until the forty-first session it got one, and a client whose replay delivery
    /// could not serve stayed offline for good).
    public func closeConnection(reason: String) async {
        await self.session.close(reason: reason, notifyClient: false)
    }

    /// Disconnects the socket, as Socket.IO servers' `disconnect(true)` does: the client gets a
    /// DISCONNECT for the namespace, the socket leaves its rooms, and the connection closes
    /// when no other namespace of it is connected.
    public func disconnect() async {
        await self.connection?.disconnect(self)
    }
}

/// An event packet encoded once, to be sent as it is to any number of sockets of its namespace
/// (the same durable event goes to every socket of a user).
public struct EncodedEvent: Sendable {
    public let namespace: String
    let messages: [EngineMessage]

    public init(_ event: String, _ arguments: [JSONValue], namespace: String = "/") {
        self.namespace = namespace
        self.messages = SocketIOSocket.messages(for: .event(event, arguments, namespace: namespace))
    }

    /// The event with its arguments given as the JSON text of an array (`[...]`, as a push
    /// carried them, holding no binaries), spliced into the packet as it is.
    public init(_ event: String, argumentsJSON: String, namespace: String = "/") {
        self.namespace = namespace
        var text = String(SocketIOPacket.Kind.event.rawValue)
        if namespace != "/" { text += namespace + "," }
        text += "["
        JSONValue.writeString(event, to: &text)
        let inner = argumentsJSON.utf8.dropFirst().dropLast().drop { Self.isWhitespace($0) }
        if !inner.isEmpty {
            text += ","
            text += String(Substring(inner))
        }
        text += "]"
        self.messages = [.text(text)]
    }

    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }
}
