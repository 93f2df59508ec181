import Foundation
import Testing
@testable import KVMPageTable

/// `kvmpt run` must print exactly what the kernel's pgtable.c printed.
@Suite struct FixtureTests {
    @Test("kernel transcript matches", arguments: Fixtures.names)
    func transcriptMatchesKernel(_ name: String) throws {
        let expected = try Fixtures.transcript(name)
        let script = try ScriptParser.parse(try Fixtures.script(name), fileName: name + ".s2")
        #if DEBUG
        // Debug builds also check every invariant after every statement.
        let actual = try ScriptRunner(script: script).checkedTranscript()
        #else
        let actual = try ScriptRunner(script: script).transcript()
        #endif
        if actual != expected {
            let a = actual.split(separator: "\n", omittingEmptySubsequences: false)
            let e = expected.split(separator: "\n", omittingEmptySubsequences: false)
            let i = (0..<min(a.count, e.count)).first { a[$0] != e[$0] } ?? min(a.count, e.count)
            Issue.record("""
                \(name): first difference at transcript line \(i + 1)
                  kernel: \(i < e.count ? String(e[i]) : "<end>")
                  kvmpt:  \(i < a.count ? String(a[i]) : "<end>")
                """)
        }
    }

    @Test func everyFixtureIsVendored() throws {
        #expect(Fixtures.names.count >= 51)
        for name in Fixtures.names {
            #expect(FileManager.default.fileExists(atPath: Fixtures.directory.appendingPathComponent(name + ".out").path))
        }
    }

    /// The vendored copy must be byte-identical to `../shared/fixtures`.
    @Test(.enabled(if: Fixtures.shared != nil, "../shared/fixtures is not beside the package"))
    func vendoredCopyIsIdentical() throws {
        let shared = try #require(Fixtures.shared)
        let fm = FileManager.default
        let theirs = try fm.contentsOfDirectory(atPath: shared.path).sorted()
        let ours = try fm.contentsOfDirectory(atPath: Fixtures.directory.path).sorted()
        #expect(theirs == ours)
        for file in theirs {
            let a = try Data(contentsOf: shared.appendingPathComponent(file))
            let b = try Data(contentsOf: Fixtures.directory.appendingPathComponent(file))
            #expect(a == b, "\(file) differs from ../shared/fixtures")
        }
    }
}
