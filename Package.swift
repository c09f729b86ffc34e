// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "lbd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "lbd", targets: ["lbd"]),
        .library(name: "LBCore", targets: ["LBCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(name: "CLibevent", pkgConfig: "libevent_pthreads", providers: [.apt(["libevent-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .target(name: "DNSResolver", dependencies: ["CLibevent"]),
        .target(name: "VRRP", dependencies: ["CLibevent", .product(name: "Logging", package: "swift-log")]),
        .target(
            name: "LBCore",
            dependencies: [
                "CLibevent", "COpenSSL", "DNSResolver", "VRRP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: [
                // Dynamic exclusivity checks cost ~1% of proxy CPU on the hot path; debug builds
                // (and so the test suite) keep them.
                .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))
            ]),
        .executableTarget(
            name: "lbd",
            dependencies: ["LBCore", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .testTarget(name: "LBCoreTests", dependencies: ["LBCore"]),
        .testTarget(name: "DNSResolverTests", dependencies: ["DNSResolver"]),
        .testTarget(name: "VRRPTests", dependencies: ["VRRP"]),
        // libFuzzer target for the DNS codec (scripts/fuzz-dns); a plain build is a replay tool.
        .executableTarget(
            name: "FuzzDNS", dependencies: ["DNSResolver"], swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
        // libFuzzer target for the VRRP codec and state machine (scripts/fuzz vrrp).
        .executableTarget(
            name: "FuzzVRRP", dependencies: ["VRRP"], swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
        // libFuzzer targets for the HTTP parsers, the chunked decoder and the config loader (scripts/fuzz).
        .executableTarget(
            name: "FuzzLBCore", dependencies: ["LBCore"], swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
    ],
    swiftLanguageModes: [.v6]
)
