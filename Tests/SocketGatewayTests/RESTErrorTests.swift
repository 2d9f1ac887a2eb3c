import Foundation
import Hummingbird
import HummingbirdTesting
import MessengerContracts
import Testing

@testable import SocketGateway

/// The gateway's REST errors as a client sees them (protocol.md, "Errors"): the status for each
/// contract code, the `{"error": {"code", "message"}}` body, `Retry-After` and
/// `WWW-Authenticate`, malformed bodies, and failures that must leak nothing. Through the
/// gateway's own middleware and body decoding, on a router of test routes.
@Suite("The gateway's REST errors")
struct RESTErrorTests {
    struct Credentials: Decodable {
        var username: String
        var password: String
    }

    /// Carries text that must not reach a client.
    struct UnexpectedFailure: Error, CustomStringConvertible {
        var description: String { "connection string password=s3cret" }
    }

    static let serviceErrors: [(ServiceError, HTTPResponse.Status)] = [
        (.invalidArgument("body is too long"), .unprocessableContent),
        (.unauthorized(), .unauthorized),
        (.forbidden("not a member"), .forbidden),
        (.notFound("no such thread"), .notFound),
        (.conflict("username is already taken"), .conflict),
        (.init(.payloadTooLarge, "too large"), .contentTooLarge),
        (.rateLimited("too many failed logins", retryAfter: 30), .tooManyRequests),
        (.unavailable("auth is busy", retryAfter: 7), .serviceUnavailable),
        (.unavailable("messaging did not answer in time"), .serviceUnavailable),
        (.internal(), .internalServerError),
    ]

    static func application() -> some ApplicationProtocol {
        let router = Router(context: GatewayRequestContext.self)
        router.add(middleware: ErrorShapeMiddleware())
        for (index, (error, _)) in Self.serviceErrors.enumerated() {
            router.get("/service-error/\(index)") { _, _ -> Response in throw error }
        }
        router.get("/needs-user") { _, context -> String in try context.requireUser().uuidString }
        router.get("/unexpected") { _, _ -> Response in throw UnexpectedFailure() }
        router.get("/deleted-file") { request, context -> Response in
            let range = request.uri.queryParameters.get("range").map { _ in 0...9 }
            let gone = FileManager.default.temporaryDirectory.appendingPathComponent("messenger-\(UUID())").path
            return Response(status: .ok, body: try await MediaController.load(gone, range: range, context: context))
        }
        router.post("/login") { request, _ -> String in
            try await JSONBody.decode(Credentials.self, from: request).username
        }
        return Application(router: router)
    }

    struct ErrorBody: Decodable {
        struct Detail: Decodable {
            var code: String
            var message: String
        }
        var error: Detail
    }

    static func errorBody(_ response: TestResponse) throws -> ErrorBody.Detail {
        #expect(response.headers[.contentType] == "application/json; charset=utf-8")
        return try JSONDecoder().decode(ErrorBody.self, from: Data(buffer: response.body)).error
    }

    @Test("each contract code has its status and the contract's body; Retry-After when the error carries one")
    func serviceErrors() async throws {
        try await Self.application().test(.router) { client in
            for (index, (error, status)) in Self.serviceErrors.enumerated() {
                try await client.execute(uri: "/service-error/\(index)", method: .get) { response in
                    #expect(response.status == status, "\(error.code)")
                    let body = try Self.errorBody(response)
                    #expect(body.code == error.code.rawValue && body.message == error.message)
                    #expect(response.headers[.retryAfter] == error.retryAfter.map(String.init), "\(error.code)")
                    let challenge = response.headers[.wwwAuthenticate]
                    #expect(challenge == (status == .unauthorized ? "Bearer" : nil), "\(error.code)")
                }
            }
        }
    }

    @Test("a route without a verified caller answers 401 with a Bearer challenge")
    func missingCaller() async throws {
        try await Self.application().test(.router) { client in
            try await client.execute(uri: "/needs-user", method: .get) { response in
                #expect(response.status == .unauthorized)
                #expect(response.headers[.wwwAuthenticate] == "Bearer")
                let error = try Self.errorBody(response)
                #expect(error.code == "unauthorized")
            }
        }
    }

    @Test("a media file deleted after its header was read is 404 'no such file', whole or in part")
    func fileDeletedWhileServed() async throws {
        try await Self.application().test(.router) { client in
            for uri in ["/deleted-file", "/deleted-file?range=1"] {
                try await client.execute(uri: uri, method: .get) { response in
                    #expect(response.status == .notFound, "\(uri)")
                    let error = try Self.errorBody(response)
                    // Until the fifty-fifth session: "no such route", Hummingbird's own 404.
                    #expect(error.code == "not_found" && error.message == "no such file", "\(uri): \(error.message)")
                }
            }
        }
    }

    @Test("unknown routes, and known paths with another method, are 404 not_found")
    func unknownRoutes() async throws {
        try await Self.application().test(.router) { client in
            for (uri, method) in [("/no/such/route", HTTPRequest.Method.get), ("/login", .get)] {
                try await client.execute(uri: uri, method: method) { response in
                    #expect(response.status == .notFound, "\(method) \(uri)")
                    let error = try Self.errorBody(response)
                    #expect(error.code == "not_found")
                }
            }
        }
    }

    @Test("malformed bodies are 400 invalid_argument saying what is wrong; too large is 413")
    func malformedBodies() async throws {
        let cases: [(String, HTTPResponse.Status, String, String)] = [
            ("{not json", .badRequest, "invalid_argument", "not valid JSON"),
            (#"{"username":"ann"}"#, .badRequest, "invalid_argument", "lacks 'password'"),
            (#"{"username":"ann","password":7}"#, .badRequest, "invalid_argument", "wrong type at 'password'"),
            (#"{"username":"ann","password":null}"#, .badRequest, "invalid_argument", "null at 'password'"),
            ("null", .badRequest, "invalid_argument", "must be a JSON object"),
            ("[1]", .badRequest, "invalid_argument", "must be a JSON object"),
            (
                #"{"username":"ann","password":""# + String(repeating: "x", count: JSONBody.limit) + #""}"#,
                .contentTooLarge, "payload_too_large", "too large"
            ),
        ]
        try await Self.application().test(.router) { client in
            for (body, status, code, says) in cases {
                try await client.execute(
                    uri: "/login", method: .post, headers: [.contentType: "application/json"],
                    body: ByteBuffer(string: body)
                ) { response in
                    #expect(response.status == status)
                    let error = try Self.errorBody(response)
                    #expect(error.code == code && error.message.contains(says), "\(error.message)")
                }
            }
            try await client.execute(
                uri: "/login", method: .post, body: ByteBuffer(string: #"{"username":"ann","password":"p"}"#)
            ) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "ann")
            }
        }
    }

    @Test("an unexpected failure is a 500 that says nothing of it")
    func unexpectedFailure() async throws {
        try await Self.application().test(.router) { client in
            try await client.execute(uri: "/unexpected", method: .get) { response in
                #expect(response.status == .internalServerError)
                let error = try Self.errorBody(response)
                #expect(error.code == "internal" && error.message == "internal error")
                #expect(!String(buffer: response.body).contains("s3cret"))
            }
        }
    }
}
