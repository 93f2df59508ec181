import Foundation
import Testing
import KVMPageTable

/// Replays FuzzTesting/FailCases: the seeds of every libFuzzer target and
/// every input that ever crashed one, through the same entry points the
/// fuzzers call (PropertyFuzzDecoder.swift, ImageFuzzBody.swift). Each must now pass.
@Suite struct FailCasesTests {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("FuzzTesting/FailCases")

    static func cases(_ target: String) -> [String] {
        let dir = directory.appendingPathComponent(target)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { !$0.hasPrefix(".") && !$0.hasSuffix(".md") }.sorted()
    }

    static func bytes(_ target: String, _ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: directory.appendingPathComponent(target).appendingPathComponent(name)))
    }

    @Test("script parser fail case", arguments: cases("FuzzScriptParser"))
    func scriptParser(_ name: String) throws {
        let problem = FuzzEntry.parseScript(try Self.bytes("FuzzScriptParser", name))
        #expect(problem == nil, "FuzzScriptParser/\(name): \(problem ?? "")")
    }

    @Test("operation sequence fail case", arguments: cases("FuzzOperations"))
    func operations(_ name: String) throws {
        let problem = FuzzEntry.operations(try Self.bytes("FuzzOperations", name))
        #expect(problem == nil, "FuzzOperations/\(name): \(problem ?? "")")
    }

    @Test("image decoding fail case", arguments: cases("FuzzImageDecode"))
    func imageDecode(_ name: String) throws {
        let problem = ImageFuzzEntry.decode(try Self.bytes("FuzzImageDecode", name))
        #expect(problem == nil, "FuzzImageDecode/\(name): \(problem ?? "")")
    }

    @Test func corpusIsPresent() {
        #expect(Self.cases("FuzzScriptParser").count >= 3)
        #expect(Self.cases("FuzzOperations").count >= 3)
        #expect(Self.cases("FuzzImageDecode").count >= 3)
    }
}
