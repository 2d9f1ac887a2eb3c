import Crypto
import Foundation
import MessengerContracts
import MessengerPostgres
import MessengerServiceKit
import MessengerTokens
import NIOCore
import NIOPosix
import Synchronization
import TestSupport
import Testing

@testable import AuthService

/// Password checks for requests whose caller stopped waiting (``RPCContext/deadline``), against
/// the real PostgreSQL: auth's schema, migrated here as the service migrates it. One test at a
/// time: some hold every thread of NIO's blocking pool for a moment.
@Suite("Password checks whose caller gave up", .serialized, .timeLimit(.minutes(1)))
struct CallerGaveUpTests {
    /// bcrypt's cheapest cost: these tests are about when a check runs, not what it costs.
    static let cost: UInt8 = 4
    static let password = "a password 1"

    @Test("a check whose deadline has passed is skipped; one still wanted, or without a deadline, runs")
    func hasherSkipsWhatNoOneWaitsFor() async throws {
        let hasher = try await PasswordHasher(cost: Self.cost)
        let passed = ContinuousClock.now - .seconds(1)
        await #expect(throws: PasswordHasher.CallerGaveUp.self) { try await hasher.hash(Self.password, before: passed) }
        let hash = try await hasher.hash(Self.password, before: .now + .seconds(60))
        await #expect(throws: PasswordHasher.CallerGaveUp.self) {
            try await hasher.verify(Self.password, against: hash, before: passed)
        }
        #expect(try await hasher.verify(Self.password, against: hash, before: nil))
        #expect(try await !hasher.verify("another password", against: hash, before: .now + .seconds(60)))
    }

    @Test("a check whose caller stops waiting while it waits for a thread is skipped at its turn")
    func skippedAtItsTurn() async throws {
        let hasher = try await PasswordHasher(cost: Self.cost)
        let hash = try await hasher.hash(Self.password, before: nil)
        // Every thread of the pool busy until the check's deadline has passed.
        let checking = try await Self.whileEveryPoolThreadIsBusy {
            let deadline = ContinuousClock.now + .milliseconds(300)
            let checking = Task { try await hasher.verify(Self.password, against: hash, before: deadline) }
            try await Task.sleep(until: deadline + .milliseconds(200))
            return checking
        }
        await #expect(throws: PasswordHasher.CallerGaveUp.self) { try await checking.value }
    }

    @Test("skipped logins answer unavailable and give their places in the throttle back")
    func skippedLoginsGiveTheirPlacesBack() async throws {
        try await self.withAuthenticator(maxFailures: 2) { authenticator, _ in
            let (name, _) = try await Self.newAccount(authenticator)
            let login = try Self.loginRequest(name, Self.password)
            // More skipped attempts than the throttle allows failures, for the login and the address.
            for _ in 0..<3 {
                await #expect {
                    try await authenticator.login(login, before: .now - .seconds(1))
                } throws: { error in
                    (error as? ServiceError)?.code == .unavailable
                }
            }
            let tokens = try await authenticator.login(login, before: .now + .seconds(60))
            #expect(tokens.user.username == name)
            // Wrong passwords still count: the throttle itself is unchanged.
            let wrong = try Self.loginRequest(name, "a wrong password")
            for _ in 0..<2 {
                await #expect { try await authenticator.login(wrong, before: nil) } throws: { error in
                    (error as? ServiceError)?.code == .unauthorized
                }
            }
            // From an address the account never logged in from (its own still may: `KnownLoginAddressTests`).
            await #expect {
                try await authenticator.login(try Self.loginRequest(name, Self.password), before: nil)
            } throws: { error in
                (error as? ServiceError)?.code == .rateLimited
            }
        }
    }

    @Test("a login that arrives when the line will not let it end in time is refused before any statement")
    func refusedBeforeTheThrottle() async throws {
        try await self.withAuthenticator(maxFailures: 5) { authenticator, database in
            let (name, id) = try await Self.newAccount(authenticator)
            // Every pool thread blocked, and as many checks waiting as there are threads: the line
            // is full, and the next check would wait at least a hash's time.
            let login = try Self.loginRequest(name, Self.password)
            let waiting = try await Self.whileEveryPoolThreadIsBusy {
                let threads = NIOSingletons.blockingPoolThreadCountSuggestion
                let waiting = (0..<threads).map { _ in
                    Task { try await authenticator.hasher.hash(Self.password, before: nil) }
                }
                #expect(await TestHelpers.eventually(timeout: .seconds(20)) { authenticator.hasher.checksInLine == threads })
                await #expect {
                    try await authenticator.login(login, before: .now + .microseconds(1))
                } throws: { error in
                    // With a retry-after of at least a second: the line ahead is a hash long.
                    (error as? ServiceError)?.code == .unavailable && ((error as? ServiceError)?.retryAfter ?? 0) >= 1
                }
                return waiting
            }
            for check in waiting { _ = try await check.value }
            // No place was reserved in the throttle, for the login or the address.
            let keys = LoginThrottle.keys(
                login: Authenticator.throttleKey(userID: id, login: name), address: login.clientAddress)
            let rows = try await database.query(
                "SELECT count(*) FROM login_failures WHERE key = ANY(\([keys.login, keys.address ?? ""]))",
                logger: TestEnvironment.logger)
            var counted = -1
            for try await count in rows.decode(Int.self) { counted = count }
            #expect(counted == 0)
            _ = try await authenticator.login(login, before: nil)
        }
    }

    @Test("a registration whose hash ends after its caller stopped waiting creates no account")
    func lateRegistrationCreatesNothing() async throws {
        // A hash of tens of milliseconds against a deadline of a few: the hash starts in time
        // and ends late (or, on a machine slow to start it, is skipped at its turn: the same
        // answer, and no account either way).
        try await self.withAuthenticator(maxFailures: 5, cost: 10) { authenticator, _ in
            let name = TestEnvironment.uniqueName("gaveup")
            let request = RegisterRequest(username: name, email: "\(name)@example.com", password: Self.password)
            await #expect {
                _ = try await authenticator.register(request, before: .now + .milliseconds(5))
            } throws: { error in
                (error as? ServiceError)?.code == .unavailable
            }
            _ = try await authenticator.register(request, before: nil)
        }
    }

    @Test("a skipped registration creates no account")
    func skippedRegistrationCreatesNothing() async throws {
        try await self.withAuthenticator(maxFailures: 5) { authenticator, _ in
            let name = TestEnvironment.uniqueName("gaveup")
            let request = RegisterRequest(username: name, email: "\(name)@example.com", password: Self.password)
            await #expect {
                _ = try await authenticator.register(request, before: .now - .seconds(1))
            } throws: { error in
                (error as? ServiceError)?.code == .unavailable
            }
            _ = try await authenticator.register(request, before: nil)
        }
    }

    /// Pool threads held by ``whileEveryPoolThreadIsBusy(_:)``.
    final class Held: Sendable {
        let count = Atomic(0)
        let release = DispatchSemaphore(value: 0)
    }

    /// Runs `body` while every thread of NIO's blocking pool is held busy (so that password
    /// checks wait in line); the threads are free again once `body` has returned or thrown.
    static func whileEveryPoolThreadIsBusy<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        let threads = NIOSingletons.blockingPoolThreadCountSuggestion
        let held = Held()
        let blockers = (0..<threads).map { _ in
            Task {
                try await NIOThreadPool.singleton.runIfActive {
                    held.count.add(1, ordering: .relaxed)
                    held.release.wait()
                }
            }
        }
        func freeThem() async throws {
            for _ in 0..<threads { held.release.signal() }
            for blocker in blockers { try await blocker.value }
        }
        do {
            #expect(await TestHelpers.eventually(timeout: .seconds(20)) { held.count.load(ordering: .relaxed) == threads })
            let result = try await body()
            try await freeThem()
            return result
        } catch {
            try await freeThem()
            throw error
        }
    }

    /// Registers an account with ``password``; returns its username and id.
    static func newAccount(_ authenticator: Authenticator) async throws -> (name: String, id: UUID) {
        let name = TestEnvironment.uniqueName("gaveup")
        let created = try await authenticator.register(
            RegisterRequest(username: name, email: "\(name)@example.com", password: Self.password), before: nil)
        return (name, created.user.id.uuid)
    }

    /// A login from an address of its own, so that tests running together do not share its counter.
    static func loginRequest(_ login: String, _ password: String) throws -> LoginRequest {
        let address = "test-\(UUID().uuidString)"
        let json = #"{"login":"\#(login)","password":"\#(password)","clientAddress":"\#(address)"}"#
        return try MessengerJSON.decode(LoginRequest.self, from: Data(json.utf8))
    }

    /// An ``Authenticator`` on auth's schema (and the database it uses), with `maxFailures` failed logins allowed per login
    /// and per address, `maxChecks` password checks per login (0: no limit), and `registrationsPerAddress` accounts per address (0: no limit), hashing at `cost`, reaching
    /// PostgreSQL at `databaseURL`.
    func withAuthenticator(
        maxFailures: Int, maxChecks: Int = 0, registrationsPerAddress: Int = 0, cost: UInt8 = Self.cost,
        databaseURL: String = TestEnvironment.databaseURL, _ body: (Authenticator, Database) async throws -> Void
    ) async throws {
        let logger = TestEnvironment.logger
        let database = try DatabaseConfiguration(url: databaseURL, schema: "auth").makeDatabase(logger: logger)
        try await whileRunning(database) {
            _ = try await DatabaseMigrator(client: database, schema: "auth", migrations: AuthMigrations.all, logger: logger)
                .run()
            let revocations = SessionRevocations(client: database, accessTokenLifetime: .seconds(900), logger: logger)
            let outbox = OutboxSignal()
            let key = SigningKey(Curve25519.Signing.PrivateKey())
            let authenticator = Authenticator(
                users: PostgresUserRepository(client: database, outbox: outbox, revocations: revocations, logger: logger),
                refreshTokens: RefreshTokenStore(
                    client: database, lifetime: .seconds(3600), revocations: revocations, outbox: outbox, logger: logger),
                throttle: LoginThrottle(
                    client: database,
                    limits: .init(
                        perLogin: maxFailures, perAddress: maxFailures, checksPerLogin: maxChecks, checksPerAddress: 0,
                        window: .seconds(600)),
                    logger: logger),
                registrations: RegistrationThrottle(
                    client: database, limits: .init(perAddress: registrationsPerAddress, window: .seconds(600)),
                    logger: logger),
                hasher: try await PasswordHasher(cost: cost),
                signer: await AccessTokenSigner(key: key, audience: TokenAudience(), lifetime: .seconds(900)),
                keySet: JSONWebKeySet(keys: [key.publicJWK]))
            try await body(authenticator, database)
        }
    }
}

/// ``PasswordCheckQueue``, without threads or clocks: which checks it takes into the line.
@Suite("The line of password checks")
struct PasswordCheckQueueTests {
    let now = ContinuousClock.now

    @Test("a check is refused when the line ahead will not be through before its deadline")
    func refusesWhatCannotEndInTime() {
        var line = PasswordCheckQueue(threads: 2, firstDuration: .milliseconds(250))
        // Two threads: checks 1 and 2 end at 250 ms, 3 and 4 at 500 ms, 5 and 6 at 750 ms.
        let within600 = (0..<5).map { _ in line.admit(at: self.now, deadline: self.now + .milliseconds(600)) }
        #expect(within600 == [true, true, true, true, false])
        let within750 = line.admit(at: self.now, deadline: self.now + .milliseconds(750))
        #expect(within750)
        #expect(line.inLine == 5)
        // A caller without a deadline waits as long as it takes.
        let withoutDeadline = line.admit(at: self.now, deadline: nil)
        #expect(withoutDeadline)
        #expect(line.expectedEnd(arrivingAt: self.now) == self.now + .seconds(1))
    }

    @Test("checks that end leave the line, and their times move the mean; skipped ones do not")
    func endedChecksLeaveTheLine() {
        var line = PasswordCheckQueue(threads: 1, firstDuration: .milliseconds(100))
        let two = (0..<2).map { _ in line.admit(at: self.now, deadline: nil) }
        #expect(two == [true, true])
        line.ended(after: .milliseconds(600))
        #expect(line.meanDuration == .milliseconds(200))
        line.ended(after: nil)
        #expect(line.meanDuration == .milliseconds(200))
        #expect(line.inLine == 0)
        // Alone in the line now: one mean's time (200 ms), then two behind another.
        let next = [200, 399].map { line.admit(at: self.now, deadline: self.now + .milliseconds($0)) }
        #expect(next == [true, false])
    }

    @Test("a check that finds a thread free is taken, however long the mean has grown")
    func aFreeThreadAlwaysTakesTheCheck() {
        var line = PasswordCheckQueue(threads: 2, firstDuration: .seconds(10))
        let taken = (0..<3).map { _ in line.admit(at: self.now, deadline: self.now + .seconds(1)) }
        #expect(taken == [true, true, false])
        line.ended(after: .milliseconds(250))
        let afterOneEnded = line.admit(at: self.now, deadline: self.now + .seconds(1))
        #expect(afterOneEnded)
    }

    @Test("the wait for a thread grows by a mean's time with each round of checks ahead")
    func waitForAThread() {
        var line = PasswordCheckQueue(threads: 2, firstDuration: .milliseconds(250))
        var waits: [Duration] = []
        for _ in 0..<5 {
            waits.append(line.waitForAThread)
            _ = line.admit(at: self.now, deadline: nil)
        }
        #expect(waits == [.zero, .zero, .milliseconds(250), .milliseconds(250), .milliseconds(500)])
        #expect(line.expectedEnd(arrivingAt: self.now) == self.now + .milliseconds(750))
    }

    @Test("a caller refused is told to come back in whole seconds, at least one")
    func retryAfterInWholeSeconds() {
        let waits: [Duration] = [.zero, .milliseconds(250), .seconds(1), .milliseconds(1001), .milliseconds(2500)]
        let seconds = waits.map { PasswordHasher.CallerGaveUp(lineWait: $0).retryAfterSeconds }
        #expect(seconds == [1, 1, 1, 2, 3])
    }

    @Test("a pool of no threads counts as one")
    func atLeastOneThread() {
        let line = PasswordCheckQueue(threads: 0, firstDuration: .milliseconds(100))
        #expect(line.threads == 1)
    }
}
