// The bodies of the libFuzzer targets in FuzzTesting/, kept here so that
// `swift test` replays FuzzTesting/FailCases through the same code
// (FailCasesTests.swift). FuzzTesting links this file through a symlink.
import KVMPageTable

enum FuzzEntry {
    /// Script parser target: any bytes. A parsed script must print (as
    /// normalised statements) to a script that parses to the same thing; a
    /// small one must also run with the invariant checker after every
    /// statement. Returns what went wrong, or nil.
    static func parseScript(_ bytes: [UInt8]) -> String? {
        let text = String(decoding: bytes, as: UTF8.self)
        let script: Script
        do throws(ScriptError) {
            script = try ScriptParser.parse(text, fileName: "fuzz.s2")
        } catch {
            if error.line < 1 { return "error reported at line \(error.line): \(error)" }
            return nil
        }
        let printed = propertyScript(script.configuration, script.statements.map(\.operation))
        do throws(ScriptError) {
            let again = try ScriptParser.parse(printed, fileName: "printed.s2")
            if again.configuration != script.configuration || again.statements.map(\.operation) != script.statements.map(\.operation) {
                return "normalised script parses differently:\n\(printed)"
            }
        } catch {
            return "normalised script does not parse (\(error)):\n\(printed)"
        }
        // Run it when it is cheap enough.
        guard script.statements.count <= 64,
              script.statements.allSatisfy({ cost($0.operation) <= 1 << 24 }),
              let runner = try? ScriptRunner(script: script) else { return nil }
        do throws(CheckedRunFailure) {
            _ = try runner.checkedTranscript(toleratingKernelOddities: script.configuration.kind == .hyp)
        } catch {
            return error.message(fileName: "fuzz.s2") + "\n" + printed
        }
        return nil
    }

    static func cost(_ op: Operation) -> UInt64 {
        switch op {
        case let .map(_, s, _, _), let .unmap(_, s), let .ioremap(_, s, _, _), let .ioremapBlock(_, s, _, _),
             let .wrprotect(_, s), let .testClearYoung(_, s, _), let .flush(_, s), let .split(_, s):
            return s
        default: return 0
        }
    }

    /// Operation-sequence target: the first byte picks a configuration, the
    /// rest drive the property generator (two bytes a choice); the sequence
    /// runs on the library and the reference model with the invariant
    /// checker after every step. Returns the shrunk failing script, or nil.
    static func operations(_ bytes: [UInt8]) -> String? {
        guard let first = bytes.first else { return nil }
        let configs = PropertyConfigurations.all
        let config = configs[Int(first) % configs.count]
        guard var generator = try? OperationGenerator(config, rng: SplitMix64(bytes: Array(bytes.dropFirst()))) else {
            return nil
        }
        var ops: [Operation] = []
        while !generator.rng.exhausted && ops.count < 48 {
            ops.append(generator.operation())
        }
        guard let failure = DifferentialRunner.run(config, ops, seed: 1) else { return nil }
        return ShrunkCase.make(config, ops, seed: 1, failure).description
    }
}
