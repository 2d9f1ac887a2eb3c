// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "messenger-backend",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "auth", targets: ["AuthService"]),
        .executable(name: "messaging", targets: ["MessagingService"]),
        .executable(name: "socket-gateway", targets: ["SocketGateway"]),
        .executable(name: "media", targets: ["MediaService"]),
        .executable(name: "delivery", targets: ["DeliveryService"]),
        .executable(name: "foundation-bench", targets: ["FoundationBench"]),
        .executable(name: "auth-bench", targets: ["AuthBench"]),
        .executable(name: "socketio-conformance", targets: ["SocketIOConformance"]),
        .executable(name: "socket-load", targets: ["SocketLoad"]),
        .executable(name: "messaging-bench", targets: ["MessagingBench"]),
        .executable(name: "media-bench", targets: ["MediaBench"]),
        .executable(name: "messenger-load", targets: ["MessengerLoad"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.8.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
    ],
    targets: [
        // MARK: System libraries (only the Shared layer imports these)
        .systemLibrary(
            name: "CRabbitMQ",
            path: "Shared/CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"])]
        ),
        // No pkgConfig: hiredis's .pc adds `-D_FILE_OFFSET_BITS=64`, which SwiftPM refuses with a
        // warning on every build (it changes nothing on 64-bit Linux); the shim includes
        // <hiredis/hiredis.h> from the default path and the module map links hiredis.
        .systemLibrary(
            name: "CHiredis",
            path: "Shared/CHiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .systemLibrary(
            name: "CCurl",
            path: "Shared/CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),

        // MARK: Shared
        .target(
            name: "ThreadedIO",
            dependencies: [],
            path: "Shared/ThreadedIO"
        ),
        .target(
            name: "MessengerContracts",
            dependencies: ["SocketIOProtocol"],
            path: "Shared/Contracts"
        ),
        .target(
            name: "MessengerAMQP",
            dependencies: [
                "CRabbitMQ",
                "ThreadedIO",
                "MessengerContracts",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Shared/AMQP"
        ),
        .target(
            name: "MessengerRedis",
            dependencies: [
                "CHiredis",
                "ThreadedIO",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Shared/Redis"
        ),
        .target(
            name: "MessengerHTTP",
            dependencies: [
                "CCurl",
                "ThreadedIO",
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Shared/HTTP"
        ),
        .target(
            name: "MessengerPostgres",
            dependencies: [
                "MessengerContracts", "ThreadedIO",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                // For `ConnectionPoolError`, which PostgresClient's calls throw unwrapped.
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Shared/Postgres"
        ),
        .target(
            name: "SocketIOProtocol",
            dependencies: [],
            path: "Shared/SocketIO"
        ),
        .target(
            name: "SocketIOServer",
            dependencies: [
                "SocketIOProtocol",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
            ],
            path: "Shared/SocketIOServer"
        ),
        .target(
            name: "MessengerTokens",
            dependencies: [
                "MessengerContracts",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Shared/Tokens"
        ),
        .target(
            name: "MessengerServiceKit",
            dependencies: [
                "MessengerAMQP",
                "MessengerContracts",
                "MessengerPostgres",
                "MessengerRedis",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Shared/ServiceKit"
        ),

        // MARK: Services
        .executableTarget(
            name: "AuthService",
            dependencies: [
                "MessengerServiceKit",
                "MessengerTokens",
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Services/auth"
        ),
        .executableTarget(
            name: "MessagingService",
            dependencies: [
                "MessengerServiceKit", "ThreadedIO",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            path: "Services/messaging"
        ),
        .executableTarget(
            name: "SocketGateway",
            dependencies: [
                "MessengerServiceKit",
                "MessengerTokens",
                "SocketIOProtocol",
                "SocketIOServer",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Services/socket-gateway",
            resources: [.copy("Resources/openapi.json")]
        ),
        .executableTarget(
            name: "MediaService",
            dependencies: [
                "MessengerServiceKit", "MessengerHTTP", "ThreadedIO",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            path: "Services/media"
        ),
        .executableTarget(
            name: "DeliveryService",
            dependencies: [
                "MessengerServiceKit", "SocketIOProtocol", "ThreadedIO", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            path: "Services/delivery"
        ),

        // MARK: Benchmarks (release build, not tests)
        .target(
            name: "BenchSupport",
            dependencies: [
                "CRabbitMQ",
                "MessengerAMQP",
                "MessengerRedis",
                "ThreadedIO",
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            path: "Tests/Benchmarks/BenchSupport"
        ),
        .executableTarget(
            name: "FoundationBench",
            dependencies: [
                "BenchSupport",
                "MessengerServiceKit",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/Benchmarks/FoundationBench"
        ),

        .executableTarget(
            name: "AuthBench",
            dependencies: [
                "BenchSupport",
                "MessengerContracts",
                "MessengerTokens",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Tests/Benchmarks/AuthBench"
        ),

        .executableTarget(
            name: "MessagingBench",
            dependencies: [
                "BenchSupport",
                "MessengerAMQP",
                "MessengerContracts",
                "MessengerPostgres",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/Benchmarks/MessagingBench"
        ),
        .executableTarget(
            name: "MessengerLoad",
            dependencies: [
                "BenchSupport",
                "MessengerPostgres",
                "MessengerServiceKit",
                "SocketIOProtocol",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            path: "Tests/Benchmarks/MessengerLoad"
        ),
        .executableTarget(
            name: "MediaBench",
            dependencies: ["BenchSupport", .product(name: "Histogram", package: "hdrhistogram-swift")],
            path: "Tests/Benchmarks/MediaBench"
        ),
        .executableTarget(
            name: "SocketLoad",
            dependencies: [
                "BenchSupport",
                "MessengerAMQP",
                "MessengerContracts",
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/Benchmarks/SocketLoad"
        ),
        .executableTarget(
            name: "SocketIOConformance",
            dependencies: [
                "SocketIOProtocol",
                "SocketIOServer",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/Conformance/SocketIOConformance"
        ),

        // MARK: Tests
        .target(
            name: "TestSupport",
            dependencies: [
                "MessengerPostgres", "MessengerServiceKit", .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/TestSupport"
        ),
        .testTarget(
            name: "SharedTests",
            dependencies: [
                "BenchSupport", "MessengerPostgres", "MessengerServiceKit", "MessengerTokens", "SocketIOProtocol",
                "SocketIOServer", "TestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            path: "Tests/SharedTests"
        ),
        .testTarget(
            name: "AuthServiceTests",
            dependencies: [
                "AuthService", "MessengerServiceKit", "MessengerTokens", "TestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/AuthServiceTests"
        ),
        .testTarget(
            name: "SocketGatewayTests",
            dependencies: [
                "MessengerAMQP", "MessengerContracts", "MessengerServiceKit", "MessengerTokens", "SocketGateway",
                "SocketIOProtocol", "SocketIOServer", "TestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            path: "Tests/SocketGatewayTests"
        ),
        .testTarget(
            name: "LoadToolTests",
            dependencies: ["MessengerLoad"],
            path: "Tests/LoadToolTests"
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "CRabbitMQ", "DeliveryService", "MediaService", "MessagingService", "MessengerHTTP", "MessengerServiceKit",
                "TestSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            ],
            path: "Tests/IntegrationTests"
        ),
        .testTarget(
            name: "FaultTests",
            dependencies: [
                "DeliveryService", "MessengerServiceKit", "TestSupport",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/FaultTests"
        ),
    ]
)

// Release builds specialize generic code across the package's own modules, as they would within
// one module: ThreadedIO's mailboxes and promises, the AMQP layer and the Socket.IO codec are
// called from every service, and unspecialized they looked up generic metadata at run time
// (about 5 % of a service's CPU in a profile of the latency floor).
for target in package.targets where target.type == .regular || target.type == .executable {
    target.swiftSettings =
        (target.swiftSettings ?? []) + [
            .unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))
        ]
}
