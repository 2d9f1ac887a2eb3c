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
}
