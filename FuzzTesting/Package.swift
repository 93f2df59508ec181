// swift-tools-version: 6.1
// libFuzzer targets for kvmpt, in their own package (as swift-nio and
// swift-protobuf do) so that the main package never builds with
// -sanitize=fuzzer. Build and run: see README.md.
import Foundation
import PackageDescription

// A path dependency is identified by its directory's name.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

// The targets define LLVMFuzzerTestOneInput and get main() from libFuzzer.
let fuzzerSettings: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

let package = Package(
    name: "FuzzTesting",
    dependencies: [
        .package(path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "FuzzScriptParser",
            dependencies: [.product(name: "KVMPageTable", package: root)],
            swiftSettings: fuzzerSettings
        ),
        .executableTarget(
            name: "FuzzOperations",
            dependencies: [.product(name: "KVMPageTable", package: root)],
            swiftSettings: fuzzerSettings
        ),
        // Registers + a physical-memory image from bytes, through
        // TableInspector.open(regions:registers:) and every view of it
        // (body: Tests/KVMPageTableTests/ImageFuzzBody.swift).
        .executableTarget(
            name: "FuzzImageDecode",
            dependencies: [.product(name: "KVMPageTable", package: root)],
            swiftSettings: fuzzerSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
