import Foundation
import Hummingbird
import MessengerContracts
import SocketIOProtocol

/// JSON in and out of REST handlers with the shared coding.
enum JSONBody {
    /// The largest request body the REST routes read.
    static let limit = 64 * 1024

    /// Decodes the body; not JSON or the wrong types are 400, naming the field, too large is 413.
    static func decode<T: Decodable>(_ type: T.Type, from request: Request) async throws -> T {
        let buffer = try await request.body.collect(upTo: Self.limit)
        // The socket's strict parser first: Foundation's decoder takes trailing commas and
        // leading zeros (`{"a":012,}`), which a socket packet with the same text is refused for.
        guard (try? JSONValue.parse(String(decoding: buffer.readableBytesView, as: UTF8.self))) != nil else {
            throw RESTError.malformed("the request body is not valid JSON")
        }
        do {
            return try MessengerJSON.decode(type, from: Data(buffer: buffer))
        } catch let DecodingError.keyNotFound(key, context) {
            throw RESTError.malformed("the request body lacks '\((context.codingPath + [key]).fieldName)'")
        } catch let DecodingError.valueNotFound(_, context) where !context.codingPath.isEmpty {
            throw RESTError.malformed("the request body has null at '\(context.codingPath.fieldName)'")
        } catch let DecodingError.typeMismatch(_, context) where !context.codingPath.isEmpty {
            throw RESTError.malformed("the request body has a wrong type at '\(context.codingPath.fieldName)'")
        } catch let DecodingError.dataCorrupted(context) where !context.codingPath.isEmpty {
            throw RESTError.malformed("the request body has an invalid value at '\(context.codingPath.fieldName)'")
        } catch DecodingError.valueNotFound, DecodingError.typeMismatch {
            throw RESTError.malformed("the request body must be a JSON object")
        } catch {
            throw RESTError.malformed("the request body is not valid JSON")
        }
    }

    static func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: try MessengerJSON.encode(value))))
    }
}
