import Foundation
import Testing
@testable import KVMPageTable

/// Runs the built `kvmpt` the way a user does: posix_spawn with files for
/// the standard streams (Foundation's Process and Bundle would leave
/// allocations LeakSanitizer reports).
enum CLI {
    /// The executable built beside the test runner (`swift test` builds it).
    static var executable: String? {
        var candidates: [String] = []
        let runner = CommandLine.arguments.first ?? ""
        var dir = (runner as NSString).deletingLastPathComponent
        // The runner may sit inside a .xctest bundle directory.
        for _ in 0..<4 {
            candidates.append(dir + "/kvmpt")
            dir = (dir as NSString).deletingLastPathComponent
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/kvmpt").path)
        return candidates.first { access($0, X_OK) == 0 && !isDirectory($0) }
    }

    private static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    static func run(_ arguments: [String], stdin: String? = nil) throws -> Result {
        let exe = try #require(executable, "kvmpt executable not found beside the tests")
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let inPath = dir.appendingPathComponent("in").path
        let outPath = dir.appendingPathComponent("out").path
        let errPath = dir.appendingPathComponent("err").path
        try Data((stdin ?? "").utf8).write(to: URL(fileURLWithPath: inPath))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, inPath, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv: [UnsafeMutablePointer<CChar>?] = ([exe] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, exe, &actions, nil, argv, environ)
        try #require(rc == 0, "posix_spawn failed: \(rc)")
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exited = (status & 0x7f) == 0
        return Result(status: exited ? (status >> 8) & 0xff : 128 + (status & 0x7f),
                      stdout: readAll(outPath), stderr: readAll(errPath))
    }

    /// A file's text, read with plain read(2) (Foundation's file reading
    /// leaves a buffer LeakSanitizer reports).
    static func readAll(_ path: String) -> String {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func scratch() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kvmpt-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}

@Suite(.enabled(if: CLI.executable != nil, "kvmpt is not built beside the tests"))
struct CommandLineTests {
    @Test func aFixtureRunsFromStandardInput() throws {
        let script = try Fixtures.script("s2-4k-ia40-basic-map-getleaf")
        let r = try CLI.run(["run", "-"], stdin: script)
        #expect(r.status == 0)
        #expect(r.stdout == (try Fixtures.transcript("s2-4k-ia40-basic-map-getleaf")))
    }

    @Test func anInvalidScriptNamesFileAndLineAndRunsNothing() throws {
        let r = try CLI.run(["run", "-"], stdin: "stage2 granule=4K ia_bits=40\nmap 0 4K 0 rw\nmap 0 4K 0 rq\n")
        #expect(r.status == 2)
        #expect(r.stdout.isEmpty)
        #expect(r.stderr == "-:3: unknown PROT letter 'q' in 'rq'\n")
    }

    @Test func aMissingScriptFileIsAnError() throws {
        let r = try CLI.run(["run", "/nonexistent/x.s2"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("cannot read '/nonexistent/x.s2'"))
    }

    struct BadArguments: Sendable, CustomStringConvertible {
        let arguments: [String]
        let status: Int32
        let message: String
        var description: String { arguments.joined(separator: " ") }
    }

    static let badArguments: [BadArguments] = [
        BadArguments(arguments: ["cost", "--size", "xyz"], status: 2, message: "--size 'xyz' is not a number"),
        BadArguments(arguments: ["cost", "--size", "0"], status: 2, message: "--size must be more than 0"),
        BadArguments(arguments: ["cost", "--size", "8G", "--granule", "8K"], status: 2, message: "--granule must be 4K, 16K or 64K"),
        BadArguments(arguments: ["cost", "--size", "8G", "--ia-bits", "99"], status: 2, message: "ia_bits=99 is outside"),
        BadArguments(arguments: ["cost", "--size", "2T"], status: 2, message: "goes beyond ia_bits=40"),
        BadArguments(arguments: ["cost", "--size", "8G", "--latency", "tlbi=abc"], status: 2, message: "is not a duration"),
        BadArguments(arguments: ["cost", "--size", "8G", "--ipa", "0x1001"], status: 2, message: "not aligned to the 4K granule"),
        BadArguments(arguments: ["decode", "/nonexistent.img"], status: 2, message: "cannot open image"),
        BadArguments(arguments: ["translate", "/nonexistent.img", "0x0"], status: 2, message: "cannot open image"),
        BadArguments(arguments: ["lint", "/nonexistent.img"], status: 2, message: "cannot open image"),
        BadArguments(arguments: ["decode", "/dev/null", "--format", "xml"], status: 64, message: "'xml' is invalid for '--format"),
    ]

    @Test("bad arguments give a clear message and a non-zero exit", arguments: badArguments)
    func badArgumentsAreRefused(_ c: BadArguments) throws {
        let r = try CLI.run(c.arguments)
        #expect(r.status == c.status)
        #expect(r.stderr.contains(c.message), "stderr was: \(r.stderr)")
        #expect(r.stdout.isEmpty)
    }

    @Test func saveImageIntoAMissingDirectoryFailsBeforeRunning() throws {
        let r = try CLI.run(["run", "--save-image", "/nonexistent/dir/x.img", "-"],
                            stdin: "stage2 granule=4K ia_bits=40\nmap 0 4K 0 rw\n")
        #expect(r.status == 2)
        #expect(r.stdout.isEmpty)
        #expect(r.stderr.contains("is not writable"))
    }

    @Test func outputFilesAreWholeOrAbsent() throws {
        let dir = try CLI.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        // A successful save leaves exactly the image and its sidecar.
        let img = dir.appendingPathComponent("t.img").path
        let ok = try CLI.run(["run", "--save-image", img, "-"], stdin: "stage2 granule=4K ia_bits=40\nmap 0 4K 0 rw\n")
        #expect(ok.status == 0)
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: dir.path)) == ["t.img", "t.img.regs"])
        // An SVG that cannot be written leaves nothing behind.
        let sub = dir.appendingPathComponent("ro")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o500], ofItemAtPath: sub.path)
        defer { try? FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: sub.path) }
        if access(sub.path, W_OK) != 0 {  // root may write anyway
            let r = try CLI.run(["cost", "--size", "4M", "--svg", sub.appendingPathComponent("c.svg").path])
            #expect(r.status != 0)
            #expect(try FileManager.default.contentsOfDirectory(atPath: sub.path).isEmpty)
        }
    }

    @Test func aTruncatedImageIsRefusedWithItsReason() throws {
        let dir = try CLI.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let img = dir.appendingPathComponent("t.img").path
        _ = try CLI.run(["run", "--save-image", img, "-"], stdin: "stage2 granule=4K ia_bits=40\nmap 0 4K 0 rw\n")
        let h = try #require(FileHandle(forUpdatingAtPath: img))
        try h.truncate(atOffset: 100)
        try h.close()
        let r = try CLI.run(["decode", img])
        #expect(r.status == 2)
        #expect(r.stderr.contains("truncated") || r.stderr.contains("cannot be read"), "stderr was: \(r.stderr)")
    }
}

/// The bundled example image must be what its script saves.
@Suite struct BundledExampleTests {
    static var examples: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Examples")
    }

    @Test func bundledImageMatchesItsScript() throws {
        let script = try String(contentsOf: Self.examples.appendingPathComponent("inspect-demo.s2"), encoding: .utf8)
        let runner = try ScriptRunner(script: try ScriptParser.parse(script, fileName: "inspect-demo.s2"))
        _ = runner.transcript()
        let dir = try CLI.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fresh = dir.appendingPathComponent("demo.img").path
        try ImageWriter.save(runner.table.pageTable, to: fresh)
        let bundled = Self.examples.appendingPathComponent("inspect-demo.img").path
        #expect(try Data(contentsOf: URL(fileURLWithPath: bundled)) == (try Data(contentsOf: URL(fileURLWithPath: fresh))))
        #expect(try String(contentsOfFile: bundled + ".regs", encoding: .utf8)
                == (try String(contentsOfFile: fresh + ".regs", encoding: .utf8)))
    }
}
