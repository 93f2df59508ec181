// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "kvmpt",
    products: [
        .library(name: "KVMPageTable", targets: ["KVMPageTable"]),
        .executable(name: "kvmpt", targets: ["kvmpt"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // Descriptor layout facts (bit positions, masks, flag enums) in C.
        .target(
            name: "CKVMPageTable",
            path: "Include",
            publicHeadersPath: "."
        ),
        .target(
            name: "KVMPageTable",
            dependencies: ["CKVMPageTable"],
            path: "Sources/KVMPageTable",
            exclude: []
        ),
        .executableTarget(
            name: "kvmpt",
            dependencies: [
                "KVMPageTable",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/kvmpt"
        ),
        .testTarget(
            name: "KVMPageTableTests",
            dependencies: ["KVMPageTable", "CKVMPageTable"],
            path: "Tests/KVMPageTableTests",
            resources: [.copy("Fixtures")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
