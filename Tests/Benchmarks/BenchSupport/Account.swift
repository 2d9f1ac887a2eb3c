import Foundation
import ThreadedIO

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A user the benchmarks register and log in through the running gateway's REST API.
public struct Account: Sendable {
    public var id: String
    /// The access token.
    public var token: String

    /// Registers and logs in `count` fresh users, `concurrency` at a time (bcrypt makes each
    /// one cost the auth service a few milliseconds of CPU).
    public static func register(count: Int, base: String, label: String, concurrency: Int = 8) async throws -> [Account] {
        try await withThrowingTaskGroup(of: (Int, Account).self) { group in
            var accounts = [Account?](repeating: nil, count: count)
            var next = 0
            func addNext() {
                let index = next
                next += 1
                group.addTask { (index, try await Account.register(base: base, name: "\(label)_\(index)")) }
            }
            while next < min(concurrency, count) { addNext() }
            for try await (index, account) in group {
                accounts[index] = account
                if next < count { addNext() }
            }
            return accounts.compactMap { $0 }
        }
    }

    /// Registers one user and logs it in. As a client of the contract should, it tries again
    /// after `unavailable` (503: the gateway gave up waiting for auth, on a busy machine), a few
    /// times with growing pauses; a conflict on a second try means the first one did create the
    /// account after all.
    public static func register(base: String, name suffix: String) async throws -> Account {
        let name = "load_\(UUID().uuidString.prefix(8).lowercased())_\(suffix)"
        let password = "load password 1"
        let user = ["username": name, "email": "\(name)@load.example", "password": password]
        let created = try await retryingUnavailable { try await postJSON("\(base)/api/users", user) }
        if !(created.reply.status == 409 && created.attempts > 1) { try created.reply.expect(201) }
        let data = try await retryingUnavailable {
            try await postJSON("\(base)/api/login", ["login": name, "password": password])
        }.reply.expect(200)
        struct Reply: Decodable {
            struct User: Decodable { var id: String }
            var accessToken: String
            var user: User
        }
        let reply = try JSONDecoder().decode(Reply.self, from: data)
        return Account(id: reply.user.id, token: reply.accessToken)
    }
}

/// POSTs `body` as JSON; the status and the body of the reply.
public func postJSON(_ url: String, _ body: [String: String]) async throws -> HTTPReply {
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = "POST"
    request.setValue("application/json", forHTTPHeaderField: "Content-Type")
    request.httpBody = try JSONEncoder().encode(body)
    request.timeoutInterval = 60
    let (data, response) = try await URLSession.shared.data(for: request)
    return HTTPReply(url: url, status: (response as? HTTPURLResponse)?.statusCode ?? 0, body: data)
}

/// `request`, made again while it answers 503 (`unavailable`), up to 5 times in all, after
/// pauses growing from 1 s to 8 s (``Backoff``: jittered, so clients that failed together do not
/// come back together); the last reply, and how many requests it took.
func retryingUnavailable(_ request: () async throws -> HTTPReply) async throws -> (reply: HTTPReply, attempts: Int) {
    var attempts = 1
    var backoff = Backoff(initial: .seconds(1), maximum: .seconds(8))
    var reply = try await request()
    while reply.status == 503, attempts < 5 {
        try await Task.sleep(for: backoff.next())
        attempts += 1
        reply = try await request()
    }
    return (reply, attempts)
}

/// A reply to `postJSON`.
public struct HTTPReply: Sendable {
    public var url: String
    public var status: Int
    public var body: Data

    /// The body, or an error naming the request, the status and the body when the status is not `status`.
    @discardableResult
    public func expect(_ status: Int) throws -> Data {
        guard self.status == status else { throw UnexpectedReply(reply: self, expected: status) }
        return self.body
    }
}

/// A request answered with another status than the one expected.
public struct UnexpectedReply: Error, CustomStringConvertible {
    public var reply: HTTPReply
    public var expected: Int

    public var description: String {
        "POST \(self.reply.url) answered \(self.reply.status), not \(self.expected): \(String(decoding: self.reply.body.prefix(500), as: UTF8.self))"
    }
}
