import Foundation
import Testing
@testable import KVMPageTable

// MARK: - Fixtures

private enum ParserFixtures {
    static let directory: URL? = Bundle.module.url(forResource: "Fixtures", withExtension: nil)

    /// Base names of every `.s2` script in the fixture directory.
    static let scriptNames: [String] = {
        guard let directory,
              let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return [] }
        return names.filter { $0.hasSuffix(".s2") }.map { String($0.dropLast(3)) }.sorted()
    }()

    static func text(_ name: String, _ ext: String) throws -> String {
        let url = try #require(directory).appendingPathComponent(name + "." + ext)
        return try String(contentsOf: url, encoding: .utf8)
    }
}

@Suite struct ScriptParserFixtureTests {
    @Test func fixtureDirectoryHasScripts() {
        #expect(ParserFixtures.directory != nil)
        #expect(ParserFixtures.scriptNames.count >= 50)
        // Every script has its transcript.
        for name in ParserFixtures.scriptNames {
            #expect((try? ParserFixtures.text(name, "out")) != nil, "\(name).out")
        }
    }

    @Test(arguments: ParserFixtures.scriptNames)
    func fixtureParsesAndEchoesAsTranscript(_ name: String) throws {
        let source = try ParserFixtures.text(name, "s2")
        let script = try ScriptParser.parse(source, fileName: name + ".s2")
        #expect(script.fileName == name + ".s2")

        let sourceLines = source.split(separator: "\n", omittingEmptySubsequences: false)
        var out = try ParserFixtures.text(name, "out").split(separator: "\n", omittingEmptySubsequences: false)
        if out.last == "" { out.removeLast() }

        // Configuration echo (first line of the transcript).
        let c = script.configuration
        let head = try #require(out.first)
        switch c.kind {
        case .stage2:
            #expect(head.hasPrefix("# kvmpt v1 stage2 granule=\(c.granule) ia_bits=\(c.inputBits) start_level="))
            #expect(head.hasSuffix(" fwb=\(c.fwb ? 1 : 0) lpa2=\(c.lpa2 ? 1 : 0) tlbi_range=\(c.tlbiRange ? 1 : 0)"))
        case .hyp:
            #expect(head.hasPrefix("# kvmpt v1 hyp granule=\(c.granule) va_bits=\(c.inputBits) start_level="))
            #expect(head.hasSuffix(" lpa2=\(c.lpa2 ? 1 : 0)"))
            #expect(!c.fwb && !c.tlbiRange)
        }

        // One transcript line (or block) per statement, in order.
        var i = 1
        var previousLine = 0
        for statement in script.statements {
            let op = statement.operation
            #expect(statement.line > previousLine)
            previousLine = statement.line
            // The statement's line in the source starts with its keyword.
            let sourceLine = sourceLines[statement.line - 1]
                .trimmingCharacters(in: .whitespaces)
            #expect(sourceLine.split(separator: " ").first.map(String.init) == op.keyword,
                    "line \(statement.line): \(sourceLine)")

            guard i < out.count else {
                Issue.record("\(name): transcript ends before \(op.normalized) (line \(statement.line))")
                return
            }
            let echo = out[i]
            switch op {
            case .dump, .ptdump:
                #expect(echo == op.keyword[...], "\(name) line \(statement.line)")
                i += 1
                while i < out.count, out[i] != "end" { i += 1 }
                #expect(i < out.count, "\(name): \(op.keyword) block has no end")
                i += 1
            case .summary:
                #expect(echo == "summary" || echo.hasPrefix("summary "), "\(name) line \(statement.line)")
                i += 1
            default:
                #expect(echo.hasPrefix(op.normalized + " = "),
                        "\(name) line \(statement.line): '\(op.normalized)' vs '\(echo)'")
                i += 1
            }
        }
        #expect(i == out.count, "\(name): transcript has \(out.count - i) lines left over")
    }

    @Test(arguments: ParserFixtures.scriptNames)
    func fixtureConfigurationEchoMatchesGeometry(_ name: String) throws {
        let script = try ScriptParser.parse(try ParserFixtures.text(name, "s2"), fileName: name)
        let c = script.configuration
        let g = try TableGeometry(c)
        let head = try ParserFixtures.text(name, "out").split(separator: "\n").first.map(String.init)
        let expected: String
        switch c.kind {
        case .stage2:
            expected = "# kvmpt v1 stage2 granule=\(c.granule) ia_bits=\(c.inputBits) start_level=\(g.startLevel.rawValue) root_pages=\(g.rootPages) fwb=\(c.fwb ? 1 : 0) lpa2=\(c.lpa2 ? 1 : 0) tlbi_range=\(c.tlbiRange ? 1 : 0)"
        case .hyp:
            expected = "# kvmpt v1 hyp granule=\(c.granule) va_bits=\(c.inputBits) start_level=\(g.startLevel.rawValue) root_pages=\(g.rootPages) lpa2=\(c.lpa2 ? 1 : 0)"
        }
        #expect(head == expected)
    }
}

// MARK: - Valid scripts

@Suite struct ScriptParserValidTests {
    static let header = "stage2 granule=4K ia_bits=40\n"

    struct OperationCase: Sendable, CustomTestStringConvertible {
        let source: String
        /// Qualified: Foundation also declares `Operation` (NSOperation).
        let operation: KVMPageTable.Operation
        let normalized: String
        var testDescription: String { source }
    }

    static let operationCases: [OperationCase] = [
        .init(source: "map 0x40000000 2M 0x80000000 rw",
              operation: .map(addr: 0x4000_0000, size: 0x20_0000, phys: 0x8000_0000, prot: .readWrite),
              normalized: "map 0x40000000 0x200000 0x80000000 rw"),
        .init(source: "map 0 4k 0 xwrrw",
              operation: .map(addr: 0, size: 0x1000, phys: 0, prot: [.read, .write, .execute]),
              normalized: "map 0x0 0x1000 0x0 rwx"),
        .init(source: "map 0 4K 0 ndr",
              operation: .map(addr: 0, size: 0x1000, phys: 0, prot: [.read, .device, .normalNC]),
              normalized: "map 0x0 0x1000 0x0 rdn"),
        .init(source: "unmap 0x0000000000001000 4096",
              operation: .unmap(addr: 0x1000, size: 0x1000),
              normalized: "unmap 0x1000 0x1000"),
        .init(source: "ioremap 0x1c000000 64K 0x1c000000",
              operation: .ioremap(addr: 0x1c00_0000, size: 0x1_0000, phys: 0x1c00_0000, readOnly: false),
              normalized: "ioremap 0x1c000000 0x10000 0x1c000000"),
        .init(source: "ioremap 0x1c000000 64K 0x1c000000 ro",
              operation: .ioremap(addr: 0x1c00_0000, size: 0x1_0000, phys: 0x1c00_0000, readOnly: true),
              normalized: "ioremap 0x1c000000 0x10000 0x1c000000 ro"),
        .init(source: "ioremap_block 8G 8G 8G",
              operation: .ioremapBlock(addr: 8 << 30, size: 8 << 30, phys: 8 << 30, readOnly: false),
              normalized: "ioremap_block 0x200000000 0x200000000 0x200000000"),
        .init(source: "ioremap_block 0 1G 0 ro",
              operation: .ioremapBlock(addr: 0, size: 1 << 30, phys: 0, readOnly: true),
              normalized: "ioremap_block 0x0 0x40000000 0x0 ro"),
        .init(source: "wrprotect 0x40000000 1G",
              operation: .wrprotect(addr: 0x4000_0000, size: 1 << 30),
              normalized: "wrprotect 0x40000000 0x40000000"),
        .init(source: "mkyoung 0xABCdef000",
              operation: .mkyoung(addr: 0xabc_def000),
              normalized: "mkyoung 0xabcdef000"),
        .init(source: "test_clear_young 0 2M",
              operation: .testClearYoung(addr: 0, size: 2 << 20, mkold: false),
              normalized: "test_clear_young 0x0 0x200000"),
        .init(source: "test_clear_young 0 2M mkold",
              operation: .testClearYoung(addr: 0, size: 2 << 20, mkold: true),
              normalized: "test_clear_young 0x0 0x200000 mkold"),
        .init(source: "relax_perms 0x1000 xr",
              operation: .relaxPerms(addr: 0x1000, prot: [.read, .execute]),
              normalized: "relax_perms 0x1000 rx"),
        .init(source: "flush 0 1T",
              operation: .flush(addr: 0, size: 1 << 40),
              normalized: "flush 0x0 0x10000000000"),
        .init(source: "split 0x40000000 1g",
              operation: .split(addr: 0x4000_0000, size: 1 << 30),
              normalized: "split 0x40000000 0x40000000"),
        .init(source: "get_leaf 0xfffffff000",
              operation: .getLeaf(addr: 0xff_ffff_f000),
              normalized: "get_leaf 0xfffffff000"),
        .init(source: "limit_pages 3",
              operation: .limitPages(3),
              normalized: "limit_pages 0x3"),
        .init(source: "limit_pages 18446744073709551615",
              operation: .limitPages(.max),
              normalized: "limit_pages 0xffffffffffffffff"),
        .init(source: "dump", operation: .dump, normalized: "dump"),
        .init(source: "summary", operation: .summary, normalized: "summary"),
        .init(source: "ptdump", operation: .ptdump, normalized: "ptdump"),
    ]

    @Test(arguments: operationCases)
    func operationParses(_ c: OperationCase) throws {
        let script = try ScriptParser.parse(Self.header + c.source + "\n", fileName: "t.s2")
        #expect(script.statements == [Statement(operation: c.operation, line: 2)])
        #expect(script.statements.first?.operation.normalized == c.normalized)
    }

    @Test func everyKeywordIsKnown() {
        let keywords = Set(ScriptParser.allOperationPrototypes.map(\.keyword))
        #expect(keywords == ["map", "unmap", "ioremap", "ioremap_block", "wrprotect", "mkyoung",
                             "test_clear_young", "relax_perms", "flush", "split", "get_leaf",
                             "limit_pages", "dump", "summary", "ptdump"])
        #expect(ScriptParser.allOperationPrototypes.count == keywords.count)
    }

    @Test func configurationOptions() throws {
        let cases: [(String, ScriptConfiguration)] = [
            ("stage2 granule=4K ia_bits=40",
             ScriptConfiguration(kind: .stage2, granule: .size4K, inputBits: 40)),
            ("stage2 ia_bits=36 granule=16K tlbi_range fwb",
             ScriptConfiguration(kind: .stage2, granule: .size16K, inputBits: 36, fwb: true, tlbiRange: true)),
            ("stage2 lpa2 tlbi_range fwb ia_bits=52 granule=16K",
             ScriptConfiguration(kind: .stage2, granule: .size16K, inputBits: 52, fwb: true, lpa2: true, tlbiRange: true)),
            ("stage2 granule=64k ia_bits=52",
             ScriptConfiguration(kind: .stage2, granule: .size64K, inputBits: 52)),
            ("stage2 granule=4K ia_bits=32",
             ScriptConfiguration(kind: .stage2, granule: .size4K, inputBits: 32)),
            ("hyp granule=4K va_bits=48",
             ScriptConfiguration(kind: .hyp, granule: .size4K, inputBits: 48)),
            ("hyp va_bits=52 lpa2 granule=4K",
             ScriptConfiguration(kind: .hyp, granule: .size4K, inputBits: 52, lpa2: true)),
            ("\t hyp\tgranule=64K   va_bits=42 \t# comment",
             ScriptConfiguration(kind: .hyp, granule: .size64K, inputBits: 42)),
        ]
        for (source, expected) in cases {
            let script = try ScriptParser.parse(source, fileName: "c.s2")
            #expect(script.configuration == expected, "\(source)")
            #expect(script.statements.isEmpty)
        }
    }

    @Test func commentsBlankLinesTabsAndCRLF() throws {
        let source = "# leading comment\r\n"
            + "\r\n"
            + "   \t  \r\n"
            + "stage2 granule=4K ia_bits=40   # config comment\r\n"
            + "map\t0x1000  4K\t\t0x2000 rw#glued comment\r\n"
            + "#map bogus\r\n"
            + "  unmap 0x1000 4K  \r\n"
            + "dump\r\n"
            + "summary"  // no final newline
        let script = try ScriptParser.parse(source, fileName: "crlf.s2")
        #expect(script.statements == [
            Statement(operation: .map(addr: 0x1000, size: 0x1000, phys: 0x2000, prot: .readWrite), line: 5),
            Statement(operation: .unmap(addr: 0x1000, size: 0x1000), line: 7),
            Statement(operation: .dump, line: 8),
            Statement(operation: .summary, line: 9),
        ])
    }

    @Test func hypAcceptsItsOperations() throws {
        let source = """
            hyp granule=4K va_bits=48
            map 0 4K 0x1000 rwx
            unmap 0 4K
            get_leaf 0
            limit_pages 0
            dump
            summary
            """
        let script = try ScriptParser.parse(source, fileName: "h.s2")
        #expect(script.statements.map(\.operation.keyword) == ["map", "unmap", "get_leaf", "limit_pages", "dump", "summary"])
        #expect(script.statements.map(\.line) == [2, 3, 4, 5, 6, 7])
    }
}

// MARK: - Errors

struct ParserErrorCase: Sendable, CustomTestStringConvertible {
    let source: String
    let line: Int
    let message: String
    /// Whether `message` must match exactly (otherwise: contained).
    var exact: Bool = true
    var testDescription: String { source.debugDescription }
}

@Suite struct ScriptParserErrorTests {
    static let s2 = "stage2 granule=4K ia_bits=40\n"
    static let hyp = "hyp granule=4K va_bits=48\n"

    static func e(_ source: String, _ line: Int, _ message: String, exact: Bool = true) -> ParserErrorCase {
        ParserErrorCase(source: source, line: line, message: message, exact: exact)
    }

    static let missingConfiguration: [ParserErrorCase] = [
        e("", 1, "missing configuration: the script has no statements (the first must be 'stage2 ...' or 'hyp ...')"),
        e("# just a comment\n\n   \n", 1, "missing configuration: the script has no statements (the first must be 'stage2 ...' or 'hyp ...')"),
        e("\n\nmap 0 4K 0 rw\nstage2 granule=4K ia_bits=40\n", 3,
          "missing configuration: the first statement must be 'stage2 ...' or 'hyp ...' (found 'map')"),
        e("dump\n", 1, "missing configuration: the first statement must be 'stage2 ...' or 'hyp ...' (found 'dump')"),
        e("stage granule=4K ia_bits=40\n", 1, "unknown statement 'stage'"),
        e(s2 + "hyp granule=4K va_bits=48\n", 2, "repeated configuration (the table is configured on line 1)"),
        e("# c\n" + s2 + "dump\nstage2 granule=4K ia_bits=40\n", 4, "repeated configuration (the table is configured on line 2)"),
    ]

    static let configurationErrors: [ParserErrorCase] = [
        e("# c\nstage2 ia_bits=40\n", 2, "stage2: missing granule= (4K, 16K or 64K)"),
        e("stage2 granule=4K\n", 1, "stage2: missing ia_bits="),
        e("stage2\n", 1, "stage2: missing granule= (4K, 16K or 64K)"),
        e("hyp granule=4K\n", 1, "hyp: missing va_bits="),
        e("stage2 granule=8K ia_bits=40\n", 1, "bad granule '8K' (expected 4K, 16K or 64K)"),
        e("stage2 granule=4 ia_bits=40\n", 1, "bad granule '4' (expected 4K, 16K or 64K)"),
        e("stage2 granule=4\u{212A} ia_bits=40\n", 1, "bad granule '4\u{212A}' (expected 4K, 16K or 64K)"),
        e("stage2 granule=4096 ia_bits=40\n", 1, "bad granule '4096' (expected 4K, 16K or 64K)"),
        e("stage2 granule==4K ia_bits=40\n", 1, "bad granule '=4K' (expected 4K, 16K or 64K)"),
        e("stage2 granule=4K ia_bits=abc\n", 1, "bad ia_bits 'abc' (expected a decimal number)"),
        e("stage2 granule=4K ia_bits=0x28\n", 1, "bad ia_bits '0x28' (expected a decimal number)"),
        e("stage2 granule=4K ia_bits=-40\n", 1, "bad ia_bits '-40' (expected a decimal number)"),
        e("hyp granule=4K va_bits=4K\n", 1, "bad va_bits '4K' (expected a decimal number)"),
        e("stage2 granule=4K ia_bits=99999999999999999999999\n", 1, "ia_bits '99999999999999999999999' is out of range"),
        e("stage2 granule=4K ia_bits=\n", 1, "stage2: missing value for ia_bits (ia_bits=N)"),
        e("stage2 granule ia_bits=40\n", 1, "stage2: missing value for granule (granule=4K, 16K or 64K)"),
        e("hyp granule=4K va_bits\n", 1, "hyp: missing value for va_bits (va_bits=N)"),
        e("stage2 granule=4K ia_bits=40 fwb fwb\n", 1, "stage2: repeated option 'fwb'"),
        e("stage2 granule=4K granule=16K ia_bits=40\n", 1, "stage2: repeated option 'granule'"),
        e("stage2 granule=4K ia_bits=40 ia_bits=40\n", 1, "stage2: repeated option 'ia_bits'"),
        e("hyp lpa2 granule=4K va_bits=52 lpa2\n", 1, "hyp: repeated option 'lpa2'"),
        e("stage2 granule=4K ia_bits=40 fwb=1\n", 1, "stage2: option 'fwb' takes no value (found 'fwb=1')"),
        e("stage2 granule=4K ia_bits=40 lpa2=\n", 1, "stage2: option 'lpa2' takes no value (found 'lpa2=')"),
        e("stage2 granule=4K ia_bits=40 foo\n", 1, "stage2: unknown option 'foo'"),
        e("stage2 granule=4K ia_bits=40 FWB\n", 1, "stage2: unknown option 'FWB'"),
        e("stage2 granule=4K ia_bits=40 =4K\n", 1, "stage2: unknown option '=4K'"),
        e("stage2 granule=4K ia_bits=40 tlbi-range\n", 1, "stage2: unknown option 'tlbi-range'"),
        e("stage2 granule=4K va_bits=40\n", 1, "stage2: va_bits is for hyp (stage2 takes ia_bits)"),
        e("hyp granule=4K ia_bits=40\n", 1, "hyp: ia_bits is for stage2 (hyp takes va_bits)"),
        e("hyp granule=4K va_bits=48 fwb\n", 1, "hyp: fwb is stage-2 only"),
        e("hyp tlbi_range granule=4K va_bits=48\n", 1, "hyp: tlbi_range is stage-2 only"),
        // Leftmost problem on the line wins.
        e("stage2 granule=8K ia_bits=x\n", 1, "bad granule '8K' (expected 4K, 16K or 64K)"),
        e("stage2 bogus granule=8K\n", 1, "stage2: unknown option 'bogus'"),
        // Refused geometries: TableGeometry's own message, on the config line.
        e("# c\nstage2 granule=4K ia_bits=52\n", 2, "ia_bits=52 is outside 32...48", exact: false),
        e("stage2 granule=16K ia_bits=52\n", 1, "ia_bits=52 is outside 32...48", exact: false),
        e("stage2 granule=4K ia_bits=31\n", 1, "ia_bits=31 is outside 32...48", exact: false),
        e("stage2 granule=4K ia_bits=0\n", 1, "ia_bits=0 is outside", exact: false),
        e("stage2 granule=4K ia_bits=53 lpa2\n", 1, "ia_bits=53 is outside 32...52", exact: false),
        e("stage2 granule=64K ia_bits=53\n", 1, "ia_bits=53 is outside 32...52", exact: false),
        e("stage2 granule=64K ia_bits=48 lpa2\n", 1, "lpa2 is not available with the 64K granule", exact: false),
        e("hyp granule=64K va_bits=48 lpa2\n", 1, "lpa2 is not available with the 64K granule", exact: false),
        e("hyp granule=4K va_bits=52\n", 1, "va_bits=52 is outside 32...48", exact: false),
        e("hyp granule=16K va_bits=31\n", 1, "va_bits=31 is outside", exact: false),
    ]

    static let statementErrors: [ParserErrorCase] = [
        e(s2 + "mapp 0 4K 0 rw\n", 2, "unknown statement 'mapp'"),
        e(s2 + "MAP 0 4K 0 rw\n", 2, "unknown statement 'MAP'"),
        e(s2 + "map-0 4K 0 rw\n", 2, "unknown statement 'map-0'"),
        e(s2 + "0x1000\n", 2, "unknown statement '0x1000'"),
        e(s2 + "map\n", 2, "map: missing ADDR"),
        e(s2 + "map 0\n", 2, "map: missing SIZE"),
        e(s2 + "map 0 4K\n", 2, "map: missing PHYS"),
        e(s2 + "map 0 4K 0\n", 2, "map: missing PROT"),
        e(s2 + "map 0 4K 0 # rw\n", 2, "map: missing PROT"),
        e(s2 + "map 0 4K 0 rw rw\n", 2, "map: unexpected operand 'rw'"),
        e(s2 + "unmap 0x1000\n", 2, "unmap: missing SIZE"),
        e(s2 + "unmap 0x1000 4K 0x5\n", 2, "unmap: unexpected operand '0x5'"),
        e(s2 + "ioremap 0 4K\n", 2, "ioremap: missing PHYS"),
        e(s2 + "ioremap 0 4K 0 rw\n", 2, "ioremap: expected 'ro' or nothing, found 'rw'"),
        e(s2 + "ioremap 0 4K 0 RO\n", 2, "ioremap: expected 'ro' or nothing, found 'RO'"),
        e(s2 + "ioremap 0 4K 0 ro ro\n", 2, "ioremap: unexpected operand 'ro'"),
        e(s2 + "ioremap_block 0 4K 0 r\n", 2, "ioremap_block: expected 'ro' or nothing, found 'r'"),
        e(s2 + "ioremap_block 0 4K 0 ro 1\n", 2, "ioremap_block: unexpected operand '1'"),
        e(s2 + "wrprotect 0\n", 2, "wrprotect: missing SIZE"),
        e(s2 + "wrprotect 0 4K 4K\n", 2, "wrprotect: unexpected operand '4K'"),
        e(s2 + "mkyoung\n", 2, "mkyoung: missing ADDR"),
        e(s2 + "mkyoung 0 4K\n", 2, "mkyoung: unexpected operand '4K'"),
        e(s2 + "test_clear_young 0\n", 2, "test_clear_young: missing SIZE"),
        e(s2 + "test_clear_young 0 4K old\n", 2, "test_clear_young: expected 'mkold' or nothing, found 'old'"),
        e(s2 + "test_clear_young 0 4K mkold mkold\n", 2, "test_clear_young: unexpected operand 'mkold'"),
        e(s2 + "relax_perms 0\n", 2, "relax_perms: missing PROT"),
        e(s2 + "relax_perms 0 rw 1\n", 2, "relax_perms: unexpected operand '1'"),
        e(s2 + "flush 0\n", 2, "flush: missing SIZE"),
        e(s2 + "flush 0 4K x\n", 2, "flush: unexpected operand 'x'"),
        e(s2 + "split\n", 2, "split: missing ADDR"),
        e(s2 + "split 0 2M 4K\n", 2, "split: unexpected operand '4K'"),
        e(s2 + "get_leaf\n", 2, "get_leaf: missing ADDR"),
        e(s2 + "get_leaf 0 0\n", 2, "get_leaf: unexpected operand '0'"),
        e(s2 + "limit_pages\n", 2, "limit_pages: missing N"),
        e(s2 + "limit_pages 1 2\n", 2, "limit_pages: unexpected operand '2'"),
        e(s2 + "dump all\n", 2, "dump: unexpected operand 'all'"),
        e(s2 + "summary 0\n", 2, "summary: unexpected operand '0'"),
        e(s2 + "ptdump -v\n", 2, "ptdump: unexpected operand '-v'"),
    ]

    static let operandErrors: [ParserErrorCase] = [
        e(s2 + "map xyz 4K 0 rw\n", 2, "bad number 'xyz' for ADDR"),
        e(s2 + "map 0 xyz 0 rw\n", 2, "bad number 'xyz' for SIZE"),
        e(s2 + "map 0 4K xyz rw\n", 2, "bad number 'xyz' for PHYS"),
        e(s2 + "limit_pages -1\n", 2, "bad number '-1' for N"),
        e(s2 + "map +1 4K 0 rw\n", 2, "bad number '+1' for ADDR"),
        e(s2 + "map 0x 4K 0 rw\n", 2, "bad number '0x' for ADDR"),
        e(s2 + "map 0xg 4K 0 rw\n", 2, "bad number '0xg' for ADDR"),
        e(s2 + "map 0 12Q 0 rw\n", 2, "bad number '12Q' for SIZE"),
        e(s2 + "map 0 1.5 0 rw\n", 2, "bad number '1.5' for SIZE"),
        e(s2 + "map 0 4KB 0 rw\n", 2, "bad number '4KB' for SIZE"),
        e(s2 + "map 0x1ffffffffffffffffK 4K 0 rw\n", 2, "number '0x1ffffffffffffffffK' for ADDR overflows 64 bits"),
        e(s2 + "map 0 16777216T 0 rw\n", 2, "number '16777216T' for SIZE overflows 64 bits"),
        e(s2 + "map 0 4K 18446744073709551616 rw\n", 2, "number '18446744073709551616' for PHYS overflows 64 bits"),
        e(s2 + "map 0 4K 0 rq\n", 2, "unknown PROT letter 'q' in 'rq'"),
        e(s2 + "map 0 4K 0 R\n", 2, "unknown PROT letter 'R' in 'R'"),
        e(s2 + "map 0 4K 0 -\n", 2, "unknown PROT letter '-' in '-'"),
        e(s2 + "map 0 4K 0 r,w\n", 2, "unknown PROT letter ',' in 'r,w'"),
        e(s2 + "relax_perms 0 rwX\n", 2, "unknown PROT letter 'X' in 'rwX'"),
        e(s2 + "relax_perms 0 rw\u{00E9}\n", 2, "unknown PROT letter '\u{00E9}' in 'rw\u{00E9}'"),
        e(s2 + "map 0 4K 0 r\0w\n", 2, "unknown PROT letter '\\0' in 'r\\0w'"),
        e(s2 + "map 0\u{00A0}4K 0 rw\n", 2, "bad number '0\u{00A0}4K' for ADDR"),
        e(s2 + "map 0 4K 0 rw\u{0B}\n", 2, "unknown PROT letter '\\u{b}' in 'rw\\u{b}'"),
        e(s2 + "map \u{301}0 4K 0 rw\n", 2, "bad number '\\u{301}0' for ADDR"),
        e(s2 + "map 0 4K 0 r\u{301}\n", 2, "unknown PROT letter '\\u{301}' in 'r\u{301}'"),
        // Leftmost error on a line wins; then the lowest line.
        e(s2 + "map xyz 4K 0 rq\n", 2, "bad number 'xyz' for ADDR"),
        e(s2 + "dump\nmap 0 4K 0 rq\nmapp\nmap 0 0 0\n", 3, "unknown PROT letter 'q' in 'rq'"),
        e(s2 + "map 0 4K 0 rw\r\nmap 0 4K\r0 rw\r\n", 3, "bad number '4K\\r0' for SIZE"),
    ]

    static let stage2OnlyInHyp: [ParserErrorCase] = [
        e(hyp + "ioremap 0 4K 0\n", 2, "ioremap is stage-2 only (this is a hyp script)"),
        e(hyp + "ioremap_block 0 4K 0 ro\n", 2, "ioremap_block is stage-2 only (this is a hyp script)"),
        e(hyp + "wrprotect 0 4K\n", 2, "wrprotect is stage-2 only (this is a hyp script)"),
        e(hyp + "mkyoung 0\n", 2, "mkyoung is stage-2 only (this is a hyp script)"),
        e(hyp + "test_clear_young 0 4K mkold\n", 2, "test_clear_young is stage-2 only (this is a hyp script)"),
        e(hyp + "relax_perms 0 rw\n", 2, "relax_perms is stage-2 only (this is a hyp script)"),
        e(hyp + "flush 0 4K\n", 2, "flush is stage-2 only (this is a hyp script)"),
        e(hyp + "split 0 4K\n", 2, "split is stage-2 only (this is a hyp script)"),
        e(hyp + "dump\n# c\nptdump\n", 4, "ptdump is stage-2 only (this is a hyp script)"),
        // Reported before any operand problem on the same line.
        e(hyp + "relax_perms bogus\n", 2, "relax_perms is stage-2 only (this is a hyp script)"),
    ]

    static func check(_ c: ParserErrorCase) {
        do {
            let script = try ScriptParser.parse(c.source, fileName: "bad.s2")
            Issue.record("parsed without error: \(script.statements.count) statements")
        } catch {
            #expect(error.fileName == "bad.s2")
            #expect(error.line == c.line)
            if c.exact {
                #expect(error.message == c.message)
                #expect(error.description == "bad.s2:\(c.line): \(c.message)")
            } else {
                #expect(error.message.contains(c.message), "\(error.message)")
            }
        }
    }

    @Test(arguments: missingConfiguration) func missingOrRepeatedConfiguration(_ c: ParserErrorCase) { Self.check(c) }
    @Test(arguments: configurationErrors) func configurationError(_ c: ParserErrorCase) { Self.check(c) }
    @Test(arguments: statementErrors) func statementError(_ c: ParserErrorCase) { Self.check(c) }
    @Test(arguments: operandErrors) func operandError(_ c: ParserErrorCase) { Self.check(c) }
    @Test(arguments: stage2OnlyInHyp) func stage2OnlyStatementInHypScript(_ c: ParserErrorCase) { Self.check(c) }

    @Test func refusalMessageIsTableGeometrys() throws {
        let configuration = ScriptConfiguration(kind: .stage2, granule: .size4K, inputBits: 52)
        var refusal = ""
        do { _ = try TableGeometry(configuration) } catch { refusal = error.message }
        #expect(!refusal.isEmpty)
        Self.check(ParserErrorCase(source: "stage2 granule=4K ia_bits=52\n", line: 1, message: refusal))
    }
}

// MARK: - Numbers

@Suite struct ScriptParserNumberTests {
    static let values: [(String, UInt64)] = [
        ("0", 0), ("1", 1), ("4096", 4096), ("0x0", 0), ("0x00", 0), ("0x1000", 0x1000),
        ("0xABCdef", 0xabcdef), ("0xDEADbeef", 0xdead_beef),
        ("0x0000000000000000000000000001", 1),
        ("0K", 0), ("1K", 1024), ("4k", 4096), ("2M", 2 << 20), ("2m", 2 << 20),
        ("8G", 8 << 30), ("8g", 8 << 30), ("1T", 1 << 40), ("1t", 1 << 40),
        ("0x10K", 0x4000), ("0x1g", 0x4000_0000), ("0xfT", 15 << 40),
        ("18446744073709551615", .max), ("0xffffffffffffffff", .max), ("0xFFFFFFFFFFFFFFFF", .max),
        ("16777215T", 16_777_215 << 40), ("17179869183G", 17_179_869_183 << 30),
        ("0x3fffffffffffffK", 0x3f_ffff_ffff_ffff << 10), ("0xffffffT", 0xff_ffff << 40),
    ]

    static let overflowTokens: [String] = [
        "18446744073709551616", "99999999999999999999999999", "0x10000000000000000",
        "0x1ffffffffffffffffK", "0xffffffffffffffffK", "16777216T", "17179869184G",
        "0x40000000000000K", "0x1000000T", "18014398509481984K", "18446744073709551615K",
        String(repeating: "9", count: 10_000),
    ]

    static let malformedTokens: [String] = [
        "", "0x", "0X", "0xg", "0xK", "12Q", "1.5", "-1", "+1", "K", "k", "1KK", "1K2",
        "0xx1", "x10", "0x-1", "1_000", " 1", "1 ", "1e3", "0b101", "0o7", "\u{FF10}",
        "1\u{0}", "\u{0}", "4KiB", "0x1h", "1\u{212A}", "abc", "0xfffffffffffffffffffffZ",
        "99999999999999999999999999Q",
    ]

    /// FORMAT.md has no octal: leading zeros are decimal.
    static let leadingZeroTokens: [(String, UInt64)] = [("00", 0), ("010", 10), ("08", 8), ("007K", 7 << 10),
                                                        ("0000000000000000000000000", 0), ("0X10", 16)]

    @Test(arguments: zip(values.map(\.0), values.map(\.1)))
    func parsesValue(_ token: String, _ value: UInt64) {
        #expect(ScriptParser.parseNumber(token) == .value(value))
    }

    @Test(arguments: overflowTokens) func overflows(_ token: String) {
        #expect(ScriptParser.parseNumber(token) == .overflow)
    }

    @Test(arguments: malformedTokens) func malformed(_ token: String) {
        #expect(ScriptParser.parseNumber(token) == .malformed)
    }

    @Test(arguments: leadingZeroTokens) func leadingZeroIsDecimal(_ token: String, _ value: UInt64) {
        #expect(ScriptParser.parseNumber(token) == .value(value))
    }

    @Test func numbersThroughTheParser() throws {
        let script = try ScriptParser.parse("""
            stage2 granule=4K ia_bits=40
            map 0xffffffffffffffff 18446744073709551615 16777215T rw
            unmap 0xfffffffffffffK 17179869183G
            """, fileName: "n.s2")
        #expect(script.statements.map(\.operation) == [
            .map(addr: .max, size: .max, phys: 16_777_215 << 40, prot: .readWrite),
            .unmap(addr: 0xf_ffff_ffff_ffff << 10, size: 17_179_869_183 << 30),
        ])
    }
}

// MARK: - Robustness

@Suite struct ScriptParserRobustnessTests {
    /// A parse either succeeds or throws an error on an existing line whose
    /// message is one printable line of bounded length.
    static func survives(_ source: String) {
        let lineCount = max(1, source.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).count)
        do {
            _ = try ScriptParser.parse(source, fileName: "fuzz.s2")
        } catch {
            #expect((1...lineCount).contains(error.line), "line \(error.line) of \(lineCount)")
            #expect(!error.message.isEmpty)
            #expect(error.message.count < 600, "\(error.message.prefix(100))")
            #expect(!error.message.unicodeScalars.contains { $0.properties.generalCategory == .control },
                    "\(error.message.debugDescription)")
        }
    }

    @Test func hugeLines() throws {
        let digits = String(repeating: "9", count: 1_000_000)
        do {
            _ = try ScriptParser.parse("stage2 granule=4K ia_bits=40\nmap " + digits + " 4K 0 rw\n", fileName: "big.s2")
            Issue.record("parsed")
        } catch {
            #expect(error.line == 2)
            #expect(error.message == "number '" + String(repeating: "9", count: 40) + "...' for ADDR overflows 64 bits")
        }
        Self.survives("stage2 granule=4K ia_bits=40\nmap 0 4K 0 " + String(repeating: "r", count: 500_000) + "q\n")
        Self.survives(String(repeating: "x", count: 1_000_000))
        Self.survives("stage2 granule=4K ia_bits=40\n" + String(repeating: "dump ", count: 200_000))
        Self.survives(String(repeating: " \t", count: 500_000))
        Self.survives(String(repeating: "\n", count: 200_000) + "hyp granule=4K va_bits=48\nflush 0 0")

        // Many valid statements.
        let many = "stage2 granule=4K ia_bits=40\n" + String(repeating: "map 0x1000 4K 0x2000 rw\n", count: 50_000)
        let script = try ScriptParser.parse(many, fileName: "many.s2")
        #expect(script.statements.count == 50_000)
        #expect(script.statements.last?.line == 50_001)
    }

    /// An input shown escaped in test output.
    struct OddInput: Sendable, CustomTestStringConvertible {
        let source: String
        var testDescription: String { source.debugDescription }
    }

    static let oddInputs: [OddInput] = [
        "\0", "\0\0\0\n\0", "stage2\0granule=4K ia_bits=40",
        "stage2 granule=4K ia_bits=40\0", "stage2 granule=4K ia_bits=40\nmap\0 0 4K 0 rw",
        "\r", "\r\r\n\r", "stage2 granule=4K ia_bits=40\r\r\n", "\u{FEFF}stage2 granule=4K ia_bits=40",
        "stage2 granule=4K ia_bits=40\n\u{1B}[31mmap 0 4K 0 rw", "stage2 granule=4K ia_bits=40\nmap 0 4K 0 rw\u{202E}",
        "stage2 granule=4K ia_bits=40\nmap \u{301}0 4K 0 rw", "\u{301}", " \u{301}stage2",
        "stage2 granule=4K\u{301} ia_bits=40", "stage2 granule=4K ia_bits=4\u{0660}",
        "stage2 granule=4K ia_bits=40\nmap 0 4K 0 \u{1F600}", "=", "==", "stage2 =", "stage2 ==",
        "stage2 granule=4K ia_bits=40\nmap 0 4K 0 rw\n\u{2028}dump",
        "#\n#\n#", "##", "stage2 granule=4K ia_bits=40 #fwb\nmap 0 4K 0 #",
    ].map(OddInput.init)

    @Test(arguments: oddInputs) func oddInput(_ input: OddInput) {
        Self.survives(input.source)
    }

    @Test func invalidUTF8DecodedWithReplacement() {
        let bytes: [UInt8] = Array("stage2 granule=4K ia_bits=40\nmap 0 4K 0 r".utf8) + [0xff, 0xfe, 0xc0, 0x80] + Array("\n".utf8)
        let source = String(decoding: bytes, as: UTF8.self)
        do {
            _ = try ScriptParser.parse(source, fileName: "u.s2")
            Issue.record("parsed")
        } catch {
            #expect(error.line == 2)
            #expect(error.message.hasPrefix("unknown PROT letter '\u{FFFD}' in 'r\u{FFFD}"))
        }
        Self.survives(String(decoding: [0xff, 0x00, 0x0a, 0xed, 0xa0, 0x80, 0x23, 0xf4, 0x90], as: UTF8.self))
    }

    /// Deterministic random scripts built from meaningful and hostile pieces.
    @Test func randomScriptsNeverCrash() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return state
        }
        let pieces = [
            "stage2", "hyp", "granule=4K", "granule=16K", "granule=64K", "ia_bits=40", "va_bits=48",
            "ia_bits=52", "fwb", "lpa2", "tlbi_range", "map", "unmap", "ioremap", "ioremap_block",
            "wrprotect", "mkyoung", "test_clear_young", "relax_perms", "flush", "split", "get_leaf",
            "limit_pages", "dump", "summary", "ptdump", "ro", "mkold", "rw", "rwxdn", "q", "0", "0x",
            "0x1000", "4K", "2M", "1G", "1T", "18446744073709551615", "16777216T", "010", "-1",
            " ", "  ", "\t", "\n", "\r\n", "\r", "#", "=", "\0", "\u{FFFD}", "\u{301}", "é", "\u{1F600}",
        ]
        for _ in 0..<3_000 {
            var source = next() % 3 == 0 ? "" : "stage2 granule=4K ia_bits=40\n"
            for _ in 0..<(next() % 40) {
                source += pieces[Int(next() % UInt64(pieces.count))]
                if next() % 2 == 0 { source += " " }
            }
            Self.survives(source)
        }
    }
}
