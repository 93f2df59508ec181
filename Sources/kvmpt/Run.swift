import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import KVMPageTable

/// `kvmpt run SCRIPT…`: replay operation scripts and print transcripts.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replay operation scripts (FORMAT.md) and print the transcript the kernel's pgtable.c prints.",
        discussion: """
            Every script is parsed before anything runs: an invalid one prints FILE:LINE: message \
            on standard error and exits 2. Use - to read a script from standard input.
            """
    )

    @Argument(help: "Script files (.s2), or - for standard input.")
    var scripts: [String]

    @Flag(name: .long, help: "After the transcript, print each statement's wall time on standard error.")
    var time = false

    @Flag(name: .long, help: "Check the table's invariants after every statement; stop at the first broken one.")
    var check = false

    @Option(name: .customLong("save-image"), help: "Write the final table memory of the (last) script to this raw image, with IMG.regs beside it.")
    var saveImage: String?

    func run() throws {
        var parsed: [Script] = []
        var failed = false
        for path in scripts {
            do {
                let bytes = try InputFile.read(path)
                let text = String(decoding: bytes, as: UTF8.self)
                parsed.append(try ScriptParser.parse(text, fileName: path))
            } catch let e as ScriptError {
                Output.err("\(e)\n")
                failed = true
            } catch {
                Output.err("kvmpt: \(error)\n")
                throw ExitCode(1)
            }
        }
        if failed { throw ExitCode(2) }
        if let saveImage {
            // Fail before running anything rather than after a long script.
            let slash = saveImage.lastIndex(of: "/")
            let dir = slash.map { String(saveImage[..<$0]) } ?? "."
            if access(dir.isEmpty ? "/" : dir, W_OK) != 0 {
                Output.err("kvmpt: cannot save image '\(saveImage)': directory '\(dir.isEmpty ? "/" : dir)' is not writable: \(String(cString: strerror(errno)))\n")
                throw ExitCode(2)
            }
        }

        var timings: [(String, Int, String, Duration)] = []
        for script in parsed {
            let runner: ScriptRunner
            do {
                runner = try ScriptRunner(script: script)
            } catch {
                Output.err("\(script.fileName):1: \(error)\n")
                throw ExitCode(2)
            }
            Output.out(runner.header + "\n")
            let clock = ContinuousClock()
            for statement in script.statements {
                let t0 = clock.now
                runner.execute(statement.operation, write: Output.out)
                if time {
                    timings.append((script.fileName, statement.line, statement.operation.keyword, clock.now - t0))
                }
                if check {
                    do throws(InvariantViolation) {
                        try runner.table.pageTable.check()
                    } catch {
                        Output.flush()
                        Output.err("\(script.fileName):\(statement.line): \(statement.operation.normalized): invariant broken: \(error)\n")
                        throw ExitCode(1)
                    }
                }
            }
            if let saveImage, script == parsed.last {
                do {
                    try ImageWriter.save(runner.table.pageTable, to: saveImage)
                } catch {
                    Output.flush()
                    Output.err("kvmpt: cannot save image '\(saveImage)': \(error)\n")
                    throw ExitCode(1)
                }
            }
        }
        guard Output.flush() else { throw ExitCode(1) }
        if time {
            for (file, line, keyword, d) in timings {
                let s = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
                Output.err("time \(file):\(line) \(keyword) \(formatSeconds(s))\n")
            }
        }
    }

    private func formatSeconds(_ s: Double) -> String {
        let micro = Int((s * 1e6).rounded())
        let whole = micro / 1_000_000, frac = micro % 1_000_000
        let f = String(frac)
        return "\(whole).\(String(repeating: "0", count: 6 - f.count))\(f)s"
    }
}
