import Foundation
import Testing
import KVMPageTable

/// Model-based property tests: random operation sequences, replayed on the
/// library and on ``ReferenceModel``; after every step the results, the
/// invariants, the page counts, sampled `get_leaf` translations (and, while
/// the table is small, the whole canonical dump) must agree; at the end,
/// unmapping everything must leave only the root.
///
/// `KVMPT_PROPERTY_RUNS=N` runs N cases per configuration (default 2);
/// `KVMPT_PROPERTY_SEED=S` (hex, `0x` optional) changes the base seed; `KVMPT_PROPERTY_OPS=N`
/// the operations per case (default 24).
@Suite struct PropertyTests {
    static let environment = ProcessInfo.processInfo.environment
    static let runs = environment["KVMPT_PROPERTY_RUNS"].flatMap { Int($0) } ?? 2
    static let operationsPerCase = environment["KVMPT_PROPERTY_OPS"].flatMap { Int($0) } ?? 24
    static let baseSeed: UInt64 = environment["KVMPT_PROPERTY_SEED"].flatMap { text in
        let hex = text.hasPrefix("0x") || text.hasPrefix("0X") ? String(text.dropFirst(2)) : text
        return UInt64(hex, radix: 16)
    } ?? 0x6b76_6d70_745f_7072

    static let indexedConfigurations = Array(PropertyConfigurations.all.enumerated()).map { ConfigurationCase(index: $0.offset, configuration: $0.element) }

    struct ConfigurationCase: CustomTestStringConvertible, Sendable {
        var index: Int
        var configuration: ScriptConfiguration
        var testDescription: String { configuration.scriptLine }
    }

    @Test("library agrees with the reference model", arguments: indexedConfigurations)
    func agreesWithModel(_ c: ConfigurationCase) throws {
        if let only = Self.environment["KVMPT_PROPERTY_ONLY"].flatMap({ Int($0) }), only != c.index { return }
        let verbose = Self.environment["KVMPT_PROPERTY_VERBOSE"] != nil
        let clock = ContinuousClock()
        for run in 0..<Self.runs {
            let t0 = clock.now
            let seed = SplitMix64(seed: Self.baseSeed ^ UInt64(c.index) << 32 ^ UInt64(run)).state &* 0x2545_f491_4f6c_dd1d
            var generator = try OperationGenerator(c.configuration, seed: seed)
            let count = Self.operationsPerCase / 2 + Int(generator.below(UInt64(Self.operationsPerCase)))
            let ops = generator.operations(count: count)
            let failure = DifferentialRunner.run(c.configuration, ops, seed: seed)
            if verbose {
                print("property \(c.configuration.scriptLine) run \(run) seed \(Hex.padded(seed)) ops \(ops.count): \(failure == nil ? "ok" : "FAIL") in \(clock.now - t0)")
            }
            if let failure {
                if verbose { print("unshrunk: \(failure)\n\(propertyScript(c.configuration, failure.executed))") }
                let shrunk = ShrunkCase.make(c.configuration, ops, seed: seed, failure)
                Issue.record("\(shrunk)")
                return
            }
        }
    }

    /// The model is checked against the kernel too: on every fixture, its
    /// result for each operation is the kernel's, and the library agrees
    /// with it step by step (then unmapping everything frees every page).
    static let heavyFixtures: Set<String> = ["s2-4k-ia40-mmio-8g-page-vs-block"]

    @Test("model reproduces the kernel's results", arguments: Fixtures.names)
    func modelMatchesKernel(_ name: String) throws {
        // 2 Mi pages through the model: minutes in a debug build.
        if Self.heavyFixtures.contains(name) && Self.environment["KVMPT_PROPERTY_RUNS"] == nil { return }
        let script = try ScriptParser.parse(try Fixtures.script(name), fileName: name + ".s2")
        let model = try ReferenceModel(script.configuration)
        let kernel = try Fixtures.transcript(name).split(separator: "\n").filter { $0.contains(" = ") }
        var i = 0
        for s in script.statements {
            guard let expected = model.perform(s.operation) else { continue }
            guard i < kernel.count else { Issue.record("\(name): transcript too short"); return }
            let actual = DifferentialRunner.resultField(String(kernel[i]))
            #expect(actual == expected, "\(name):\(s.line): \(s.operation.normalized): kernel \(actual), model \(expected)")
            i += 1
        }
        let ops = script.statements.map(\.operation)
        let t0 = ContinuousClock.now
        defer {
            if Self.environment["KVMPT_PROPERTY_VERBOSE"] != nil { print("fixture \(name): \(ContinuousClock.now - t0)") }
        }
        if let failure = DifferentialRunner.run(script.configuration, ops, seed: 7) {
            Issue.record("\(name): \(ShrunkCase.make(script.configuration, ops, seed: 7, failure))")
        }
    }

    /// The harness itself catches a disagreement and shrinks it to a short
    /// script: a model that forgets block semantics must fail.
    @Test func shrinkerPrintsReplayableScript() throws {
        let config = ScriptConfiguration(kind: .stage2, granule: .size4K, inputBits: 40)
        let ops: [KVMPageTable.Operation] = [
            .map(addr: 0x4000_0000, size: 0x20_0000, phys: 0x8000_0000, prot: .readWrite),
            .getLeaf(addr: 0x4000_0000),
            .map(addr: 0x8000_0000, size: 0x1000, phys: 0x1000, prot: .read),
            .unmap(addr: 0x4000_1000, size: 0x1000),
            .split(addr: 0x8000_0000, size: 0x1000),
        ]
        // The real model agrees…
        #expect(DifferentialRunner.run(config, ops, seed: 1) == nil)
        // …and the shrinker keeps only what a failing predicate needs.
        let small = Shrinker.shrink(ops) { candidate in
            candidate.contains { (op: KVMPageTable.Operation) -> Bool in if case .unmap = op { true } else { false } }
                && candidate.contains { (op: KVMPageTable.Operation) -> Bool in
                    if case let .map(a, _, _, _) = op { a == 0x4000_0000 } else { false }
                }
        }
        #expect(small.count == 2)
        let script = propertyScript(config, small)
        #expect(script == "stage2 granule=4K ia_bits=40\nmap 0x40000000 0x200000 0x80000000 rw\nunmap 0x40001000 0x1000\n")
        let parsed = try ScriptParser.parse(script, fileName: "repro.s2")
        #expect(parsed.statements.map(\.operation) == small)
    }

    /// Kernel semantics the model encodes, pinned on concrete cases.
    @Test func modelFollowsKernelSemantics() throws {
        let config = ScriptConfiguration(kind: .stage2, granule: .size4K, inputBits: 40)
        let m = try ReferenceModel(config)
        // A 2M block, then a page inside it: the block is replaced by a table
        // holding only the new page.
        #expect(m.perform(.map(addr: 0x4000_0000, size: 0x20_0000, phys: 0x8000_0000, prot: .readWrite)) == "0")
        #expect(m.perform(.map(addr: 0x4012_3000, size: 0x1000, phys: 0x9000_0000, prot: .read)) == "0")
        #expect(m.getLeaf(0x4000_0000).pte == 0)
        #expect(m.getLeaf(0x4012_3000).level == Level(3))
        // Unmapping part of a block removes all of it.
        _ = m.perform(.map(addr: 0x8000_0000, size: 0x20_0000, phys: 0x8000_0000, prot: .readWrite))
        #expect(m.perform(.unmap(addr: 0x8000_1000, size: 0x1000)) == "0")
        #expect(m.getLeaf(0x8010_0000).pte == 0)
        // relax_perms on a hole: -EAGAIN.
        #expect(m.perform(.relaxPerms(addr: 0x8000_0000, prot: .readWrite)) == "-EAGAIN")
        // Running out of pages mid-map keeps what was mapped.
        _ = m.perform(.limitPages(1))
        #expect(m.perform(.map(addr: 0x10_0000_0000, size: 0x40_0000, phys: 0x1000, prot: .read)) == "-ENOMEM")
    }
}
