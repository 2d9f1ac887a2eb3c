import Hummingbird
import HummingbirdTesting
import Testing

@testable import SocketGateway

/// ``FormQuery``: query strings as forms and `URLSearchParams` write them.
@Suite("Form-encoded query strings")
struct FormQueryTests {
    @Test("+ is a space and %2B a plus; a repeated name keeps its first value; an empty or bare name is absent")
    func decoding() async throws {
        let router = Router()
        router.get("/q") { request, _ -> String in
            let query = FormQuery(request)
            return ["a", "b", "c", "d", "e"].map { query[$0].map { "<\($0)>" } ?? "nil" }.joined(separator: ",")
        }
        try await Application(router: router).test(.router) { client in
            try await client.execute(uri: "/q?a=Anna+Lee&b=1%2B1%20x&a=second&c&d=", method: .get) { response in
                #expect(String(buffer: response.body) == "<Anna Lee>,<1+1 x>,nil,nil,nil")
            }
        }
    }

    @Test("a whole number: digits past Int's range are its bounds (the service's 422), anything else malformed (400)")
    func wholeNumbers() async throws {
        let router = Router()
        router.get("/n") { request, _ -> String in
            do {
                return try FormQuery(request).wholeNumber("n", orElse: "n must be whole").map { "\($0)" } ?? "nil"
            } catch {
                return "malformed"
            }
        }
        let cases = [
            ("n=20", "20"), ("n=-3", "-3"), ("", "nil"), ("n=", "nil"),
            ("n=99999999999999999999", "\(Int.max)"), ("n=-99999999999999999999", "\(Int.min)"),
            ("n=1.5", "malformed"), ("n=abc", "malformed"), ("n=-", "malformed"), ("n=1e3", "malformed"),
            ("n=99999999999999999999%CC%81", "malformed"),
        ]
        try await Application(router: router).test(.router) { client in
            for (query, expected) in cases {
                try await client.execute(uri: "/n?\(query)", method: .get) { response in
                    #expect(String(buffer: response.body) == expected, "\(query)")
                }
            }
        }
    }
}
