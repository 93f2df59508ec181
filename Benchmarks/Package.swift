// swift-tools-version: 6.1
//
// The kvmpt benchmarks, in a package of their own so that users of the
// library never resolve package-benchmark. Run from this directory:
//
//     swift package --scratch-path /tmp/bench-build benchmark
//
// See README.md.
import PackageDescription

// The library is the package one directory up; SwiftPM names a path
// dependency after its directory, so look that name up rather than
// assuming the clone is called "main".
let library = Context.packageDirectory.split(separator: "/").dropLast().last.map { $0.lowercased() } ?? "kvmpt"

let package = Package(
    name: "KVMPTBenchmarks",
    dependencies: [
        .package(path: ".."),
        // Only the malloc interposer: the Linux ARC runtime interposer trait
        // (on by default for Swift 6.3) is left off.
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.1",
                 traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "KVMPTBenchmarks",
            dependencies: [
                .product(name: "KVMPageTable", package: library),
                .product(name: "Benchmark", package: "package-benchmark"),
            ],
            path: "Benchmarks/KVMPTBenchmarks",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "package-benchmark"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
