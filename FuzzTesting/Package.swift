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
        // TODO(issue 3): FuzzImageDecoder — decode, translate and lint
        // arbitrary bytes + registers once `TableImage` (issue 3) exists:
        // TableImage(bytes:registers:) must never crash, and every table
        // it accepts must walk (translate sampled addresses, lint) without
        // crashing. Add the target here, its FailCases/FuzzImageDecoder
        // seeds, and its replay in Tests/KVMPageTableTests/FailCasesTests.swift.
    ],
    swiftLanguageModes: [.v6]
)
