// swift-tools-version:6.0
// libFuzzer harness over the parsers of the main package. Build and run with scripts/fuzz.sh.
import PackageDescription

let package = Package(
    name: "LFMFuzz",
    // scripts/fuzz.sh links .deps/lfm-audio to the repository root (a stable package identity whatever the clone is
    // called)
    dependencies: [.package(path: ".deps/lfm-audio")],
    targets: [
        .executableTarget(
            name: "lfm-fuzz",
            dependencies: [
                .product(name: "Formats", package: "lfm-audio"), .product(name: "MiniRuntime", package: "lfm-audio"),
            ],
            swiftSettings: [.unsafeFlags(["-parse-as-library", "-sanitize=fuzzer,address"])],
            linkerSettings: [.unsafeFlags(["-sanitize=fuzzer,address"])])
    ]
)
