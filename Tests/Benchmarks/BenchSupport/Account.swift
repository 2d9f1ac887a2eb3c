import Foundation

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

    public static func register(base: String, name suffix: String) async throws -> Account {
        let name = "load_\(UUID().uuidString.prefix(8).lowercased())_\(suffix)"
        let password = "load password 1"
        _ = try await postJSON("\(base)/api/users", ["username": name, "email": "\(name)@load.example", "password": password])
        let data = try await postJSON("\(base)/api/login", ["login": name, "password": password]).body
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
public func postJSON(_ url: String, _ body: [String: String]) async throws -> (status: Int, body: Data) {
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = "POST"
    request.setValue("application/json", forHTTPHeaderField: "Content-Type")
    request.httpBody = try JSONEncoder().encode(body)
    request.timeoutInterval = 60
    let (data, response) = try await URLSession.shared.data(for: request)
    return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
}
