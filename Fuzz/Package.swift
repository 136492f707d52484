// swift-tools-version:6.0
// libFuzzer harness over the parsers of the main package. Build and run with scripts/fuzz.sh.
import PackageDescription

let package = Package(
    name: "LFMFuzz",
    dependencies: [.package(path: "..")],
    targets: [
        .executableTarget(
            name: "lfm-fuzz",
            dependencies: [.product(name: "Formats", package: "main"), .product(name: "MiniRuntime", package: "main")],
            swiftSettings: [.unsafeFlags(["-parse-as-library", "-sanitize=fuzzer,address"])],
            linkerSettings: [.unsafeFlags(["-sanitize=fuzzer,address"])]),
    ]
)
