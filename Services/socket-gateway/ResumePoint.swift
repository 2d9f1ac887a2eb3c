import MessengerContracts
import SocketIOProtocol
import SocketIOServer

/// Where a connecting socket's events resume: its CONNECT's `auth.lastSeq` (protocol.md,
/// "Connecting"), the highest `seq` the client has.
enum ResumePoint {
    /// `lastSeq`: absent or `null` is 0 (a full replay); otherwise a whole number, 0 or more
    /// (`5.0` is 5, and one past `Int64` is its largest). Anything else (a string, `-1`, `1.5`)
    /// refuses the CONNECT with `invalid_argument` naming the field; taking it as 0 would hand
    /// the client a full replay it did not ask for.
    static func lastSeq(in auth: JSONValue?) -> Result<Int64, ConnectRefusal> {
        switch auth?["lastSeq"] {
        case nil, .null?:
            return .success(0)
        case .number(let number)? where number >= 0 && number == number.rounded():
            return .success(Int64(exactly: number) ?? .max)
        default:
            return .failure(
                ConnectRefusal(
                    message: ErrorCode.invalidArgument.rawValue,
                    data: .object([
                        "code": .string(ErrorCode.invalidArgument.rawValue),
                        "message": .string("lastSeq must be a whole number, 0 or more"),
                    ])))
        }
    }
}
