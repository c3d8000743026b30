// swift-tools-version:6.1
import PackageDescription

/// The code a simulated cluster runs is compiled the same way in debug and
/// release builds, so a seed replays the same schedule under `swift test`
/// and `swift run -c release orderly simtest` (an optimizer that removes a
/// suspension point changes which job runs when), and so the simulator's
/// seeds run at release speed in the tests.
let simulated: [SwiftSetting] = [.unsafeFlags(["-O"])]

let package = Package(
    name: "orderly",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "orderly", targets: ["orderly"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
    ],
    targets: [
        // Pure cores: the standard library only.
        .target(name: "OrderDomain", swiftSettings: simulated),
        .target(name: "HashRing", swiftSettings: simulated),
        .target(name: "Membership", dependencies: ["HashRing", "Replication"], swiftSettings: simulated),
        .target(name: "Replication", dependencies: ["LogStorage", "OrderDomain"], swiftSettings: simulated),
        .target(name: "Checksum", dependencies: ["CRC32CHardware"], swiftSettings: simulated),
        // The event log's contract and its in-memory implementation.
        .target(name: "LogStorage", dependencies: ["Checksum"], swiftSettings: simulated),
        // The seams of a node's environment: clock, task spawner.
        .target(name: "NodeRuntime", swiftSettings: simulated),
        // The CPU's CRC-32C instruction, when it has one (C: Swift has no
        // portable way to reach it).
        .target(name: "CRC32CHardware"),
        .target(name: "StatsProjection", dependencies: ["OrderDomain"]),
        .target(name: "BalancerCore", dependencies: ["HashRing"]),
        // Child processes started one at a time (Foundation's Process leaks
        // a child's descriptors into a sibling started at the same moment).
        .target(name: "ProcessLaunch"),

        // The cluster's certificates (a CA, one per node) and the TLS
        // contexts of peer links and HTTPS.
        .target(
            name: "PeerTLS",
            dependencies: [
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),

        // The peer protocol: frames, codecs, handshake.
        .target(
            name: "Wire",
            dependencies: [
                "Checksum", "LogStorage", "OrderDomain", "Replication", "Membership",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: simulated
        ),

        // I/O shells.
        .target(
            name: "EventLog",
            dependencies: [
                "Checksum", "LogStorage",
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "Node",
            dependencies: [
                "OrderDomain", "EventLog", "LogStorage", "NodeRuntime", "Wire", "HashRing", "Membership", "Replication", "PeerTLS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: simulated
        ),
        .target(
            name: "HTTPAPI",
            dependencies: [
                "OrderDomain", "EventLog", "Node", "Membership", "Replication", "Wire", "BalancerCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "Stats",
            dependencies: [
                "OrderDomain", "EventLog", "Node", "HTTPAPI", "Membership", "StatsProjection", "HashRing",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "Warehouse",
            dependencies: [
                "OrderDomain", "EventLog", "Node", "HTTPAPI",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "Balancer",
            dependencies: [
                "BalancerCore", "Node", "HTTPAPI", "Membership",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "Simulator",
            dependencies: [
                "OrderDomain",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        // The whole cluster in one process under a seeded simulator.
        .target(
            name: "ClusterSimulation",
            dependencies: [
                "Node", "LogStorage", "NodeRuntime", "OrderDomain", "Replication", "Membership", "Wire", "HashRing",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: simulated
        ),
        .executableTarget(
            name: "orderly",
            dependencies: [
                "Stats", "Warehouse", "Balancer", "BalancerCore", "ProcessLaunch", "PeerTLS", "Simulator", "ClusterSimulation", "StatsProjection", "OrderDomain", "EventLog", "Node", "HTTPAPI", "Wire", "HashRing", "Membership", "Replication",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
            ]
        ),

        .target(name: "TestSupport", dependencies: ["ProcessLaunch"], path: "Tests/TestSupport"),
        .testTarget(name: "OrderDomainTests", dependencies: ["OrderDomain"]),
        .testTarget(name: "HashRingTests", dependencies: ["HashRing"]),
        .testTarget(name: "ReplicationTests", dependencies: ["Replication", "LogStorage"]),
        .testTarget(name: "StatsProjectionTests", dependencies: ["StatsProjection", "OrderDomain"]),
        .testTarget(name: "BalancerCoreTests", dependencies: ["BalancerCore", "HashRing", "OrderDomain"]),
        .testTarget(
            name: "BalancerProxyTests",
            dependencies: [
                "Balancer",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "MembershipTests", dependencies: ["Membership", "OrderDomain", "HashRing", "Replication"]),
        .testTarget(name: "LogStorageTests", dependencies: ["LogStorage", "EventLog", "TestSupport"]),
        .testTarget(name: "EventLogTests", dependencies: ["EventLog", "Checksum", "OrderDomain", "TestSupport", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(
            name: "WireTests",
            dependencies: [
                "Wire", "OrderDomain", "Replication", "LogStorage",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "NodeTests",
            dependencies: [
                "Node", "EventLog", "OrderDomain", "Wire", "Replication", "PeerTLS", "TestSupport",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "HTTPAPITests",
            dependencies: [
                "HTTPAPI", "Node", "EventLog", "LogStorage", "OrderDomain", "Membership", "Wire", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
        .testTarget(
            name: "ContractTests",
            dependencies: [
                "HTTPAPI", "Node", "EventLog", "Stats", "Warehouse", "Balancer", "BalancerCore", "Membership", "OrderDomain", "Wire", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "SimulationTests",
            dependencies: ["ClusterSimulation", "HashRing", "Membership", "Node", "OrderDomain", "Wire", "TestSupport", "orderly"]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "orderly", "EventLog", "Node", "OrderDomain", "ProcessLaunch", "PeerTLS", "TestSupport",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
    ]
)
