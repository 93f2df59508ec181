import Foundation
import Testing
@testable import KVMPageTable

/// Memory exhaustion: every fixture that allocates more than one table page
/// is re-run with `limit_pages K` right after its configuration line, for
/// every K from 0 to the pages it needs. Never a crash; the invariants hold
/// after every statement; `-ENOMEM` is reported when pages run out; the
/// library agrees with the reference model on every partial state (results,
/// sampled translations, page counts, and the whole dump while small); and
/// unmapping everything afterwards frees every page.
@Suite struct ExhaustionTests {
    struct Sweep: CustomTestStringConvertible, Sendable {
        var name: String
        var script: Script
        /// Table pages the script allocates before its own first `limit_pages`.
        var needed: Int
        /// Only K = 0…needed run, all short of what the script needs.
        var heavy: Bool
        var testDescription: String { "\(name) (K = 0…\(needed))" }
    }

    /// Fixtures that allocate more than one table page, with what they need.
    static let sweeps: [Sweep] = Fixtures.names.compactMap { name -> Sweep? in
        if !full && PropertyTests.heavyFixtures.contains(name) {
            // 8 GiB of pages: minutes to run whole in a debug build. It
            // needs thousands of pages, so K = 0…32 all run out.
            guard let script = try? ScriptParser.parse(try Fixtures.script(name), fileName: name + ".s2") else { return nil }
            return Sweep(name: name, script: script, needed: 32, heavy: true)
        }
        guard let text = try? Fixtures.script(name),
              let script = try? ScriptParser.parse(text, fileName: name + ".s2"),
              let runner = try? ScriptRunner(script: script) else { return nil }
        let arena = runner.table.pageTable.arena
        let root = runner.table.pageTable.geometry.rootPages
        for s in script.statements {
            if case .limitPages = s.operation { break }
            _ = runner.execute(s.operation)
        }
        let needed = arena.allocatedCount - root
        return needed > 1 ? Sweep(name: name, script: script, needed: needed, heavy: false) : nil
    }

    /// Every K from 0 to `needed` when that is at most `fullUpTo` values
    /// (every fixture but the three that allocate hundreds or thousands of
    /// pages: 1 GiB splits and 8 GiB of MMIO pages); for those, K = 0…32,
    /// eight more spread up to `needed`, and `needed - 1`, `needed` when
    /// the run is cheap enough. `KVMPT_EXHAUSTION_FULL=1` sweeps every K of
    /// every fixture (slow: minutes).
    static func limits(_ needed: Int) -> [Int] {
        if full || needed <= fullUpTo { return Array(0...needed) }
        var ks = Set(0...32)
        for k in stride(from: 33, to: needed, by: max(1, needed / 8)) { ks.insert(k) }
        if needed <= 1024 { ks.formUnion([needed - 1, needed]) }
        return ks.sorted()
    }

    static let full = ProcessInfo.processInfo.environment["KVMPT_EXHAUSTION_FULL"] != nil
    static let fullUpTo = 64

    static let kinds: Set<String> = ["ioremap", "ioremap_block", "split"]

    @Test("limit_pages K for every K", arguments: sweeps)
    func sweep(_ s: Sweep) throws {
        var unlimitedRun: String? = nil
        func unlimited() throws -> String {
            if let u = unlimitedRun { return u }
            let u = try ScriptRunner(script: s.script).checkedTranscript(toleratingKernelOddities: true)
            unlimitedRun = u
            return u
        }
        // Ops before the fixture's own first limit_pages: where our limit rules.
        let ownLimit = s.script.statements.firstIndex { if case .limitPages = $0.operation { true } else { false } }
            ?? s.script.statements.count
        let budgetSensitive = s.script.statements.contains { Self.kinds.contains($0.operation.keyword) }
        let clock = ContinuousClock(), t0 = clock.now
        defer {
            if ProcessInfo.processInfo.environment["KVMPT_PROPERTY_VERBOSE"] != nil {
                print("sweep \(s.name) needed \(s.needed) Ks \(Self.limits(s.needed).count): \(clock.now - t0)")
            }
        }
        for k in s.heavy ? Array(0...s.needed) : Self.limits(s.needed) {
            var statements = s.script.statements
            statements.insert(Statement(operation: .limitPages(UInt64(k)), line: 1), at: 0)
            let script = Script(fileName: s.name + ".s2", configuration: s.script.configuration, statements: statements)
            let transcript: String
            let runner = try ScriptRunner(script: script)
            do throws(CheckedRunFailure) {
                transcript = try runner.checkedTranscript(toleratingKernelOddities: script.configuration.kind == .hyp)
            } catch {
                Issue.record("\(s.name) with limit_pages \(k): \(error.message(fileName: s.name + ".s2"))")
                return
            }
            let lines = transcript.split(separator: "\n", omittingEmptySubsequences: false)
            // Header, our limit line, then the fixture's lines.
            let results = lines.dropFirst(2).filter { $0.contains(" = ") }
            let beforeOwnLimit = results.prefix(ownLimit)
            if (k < s.needed || s.heavy) && !budgetSensitive || s.heavy {
                // (split takes what the budget holds, one level at a time,
                // and needs fewer pages than a full split when short.)
                #expect(beforeOwnLimit.contains { $0.contains(" = -ENOMEM |") },
                        "\(s.name): limit_pages \(k) < \(s.needed) pages needed, yet no -ENOMEM before its own limit_pages")
            } else if !budgetSensitive && k >= s.needed {
                // With every page it needs, the run is the unlimited one.
                var expected = try unlimited().split(separator: "\n", omittingEmptySubsequences: false)
                expected.insert(Substring("limit_pages \(Hex.short(UInt64(k))) = 0 | tlbi_ipa=0 tlbi_range=0 tlbi_vmid=0 dcache=0x0 icache=0x0 pages=+0/-0"), at: 1)
                #expect(lines == expected, "\(s.name): limit_pages \(k) (all it needs) changed the transcript")
            }
            let ops = statements.map(\.operation)
            // The model comparison (the expensive part): K = 0…8 and the
            // last K by default, every K with KVMPT_EXHAUSTION_FULL=1.
            if !Self.full && k > 8 && k != s.needed { continue }
            if !Self.full && (s.needed > Self.fullUpTo || s.heavy) && k > 8 { continue }
            if let failure = DifferentialRunner.run(script.configuration, ops, seed: UInt64(k)) {
                let shrunk = ShrunkCase.make(script.configuration, ops, seed: UInt64(k), failure)
                Issue.record("\(s.name) with limit_pages \(k): \(shrunk)")
                return
            }
        }
    }

    @Test func sweepCoversFixtures() {
        // Every fixture that maps more than one table page is swept.
        #expect(Self.sweeps.count >= 20)
    }
}
