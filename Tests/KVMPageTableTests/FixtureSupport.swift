import Foundation
@testable import KVMPageTable

/// The kernel transcripts vendored as test resources.
enum Fixtures {
    static var directory: URL {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
    }

    /// Base names of every fixture script, sorted.
    static var names: [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return files.filter { $0.hasSuffix(".s2") }.map { String($0.dropLast(3)) }.sorted()
    }

    static func script(_ name: String) throws -> String {
        try String(contentsOf: directory.appendingPathComponent(name + ".s2"), encoding: .utf8)
    }

    static func transcript(_ name: String) throws -> String {
        try String(contentsOf: directory.appendingPathComponent(name + ".out"), encoding: .utf8)
    }

    /// `../shared/fixtures` beside the package, when it is there.
    static var shared: URL? {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let dir = root.deletingLastPathComponent().appendingPathComponent("shared/fixtures")
        return FileManager.default.fileExists(atPath: dir.path) ? dir : nil
    }
}

/// Parses and runs a script, returning the transcript.
func runScript(_ text: String, name: String = "test.s2") throws -> String {
    let script = try ScriptParser.parse(text, fileName: name)
    return try ScriptRunner(script: script).transcript()
}
