import Foundation
import Testing
import CKVMPageTable
@testable import KVMPageTable

/// A scratch directory per test.
func imageScratch() throws -> String {
    let dir = NSTemporaryDirectory() + "kvmpt-image-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

/// Runs a script to its end and returns the runner (its table holds the final state).
func runToEnd(_ text: String, name: String = "test.s2") throws -> ScriptRunner {
    let runner = try ScriptRunner(script: try ScriptParser.parse(text, fileName: name))
    _ = runner.transcript()
    return runner
}

/// Saves `runner`'s table and opens the image through its sidecar.
func saveAndOpen(_ runner: ScriptRunner, dir: String, name: String = "t.img") throws -> (TableInspector<TableImage>, RegisterDecoding) {
    let path = dir + "/" + name
    try ImageWriter.save(runner.table.pageTable, to: path)
    return try TableInspector<TableImage>.open(image: path, sidecar: path + ".regs", overrides: ImageRegisters())
}

/// The last `dump` … `end` body of a transcript, if any.
func lastDump(_ transcript: String) -> String? {
    var body: String?
    var current: String?
    for line in transcript.split(separator: "\n", omittingEmptySubsequences: false) {
        if line == "dump" { current = "" } else if line == "end" {
            if let c = current { body = c }
            current = nil
        } else if current != nil { current! += line + "\n" }
    }
    return body
}

/// Whether a transcript's last table-state statement is a `dump` (so that
/// the final state is what that dump printed).
func endsWithDump(_ script: String) -> Bool {
    let ops = script.split(separator: "\n").map { $0.split(separator: "#").first.map(String.init) ?? "" }
        .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    let mutating = ops.lastIndex { !["dump", "summary", "ptdump"].contains($0.split(separator: " ").first.map(String.init) ?? "") && !$0.hasPrefix("get_leaf") && !$0.hasPrefix("limit_pages") }
    let dump = ops.lastIndex { $0 == "dump" }
    guard let dump else { return false }
    return mutating.map { dump > $0 } ?? true
}

@Suite struct ImageFixtureTests {
    @Test("save, decode canonical and ptdump equal the live table", arguments: Fixtures.names)
    func roundTrip(_ name: String) throws {
        let script = try Fixtures.script(name)
        let runner = try runToEnd(script, name: name + ".s2")
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (view, regs) = try saveAndOpen(runner, dir: dir)
        #expect(regs.errors.isEmpty, "\(regs.errors)")
        let live = runner.table.pageTable.walker.canonicalDumpText()
        let (decoded, report) = view.canonicalDump()
        #expect(report.isClean)
        #expect(decoded == live, "\(name): decoded canonical dump differs from the live table")
        if endsWithDump(script), let expected = lastDump(try Fixtures.transcript(name)) {
            #expect(decoded == expected, "\(name): decoded dump differs from the kernel's final dump")
        }
        if runner.table.pageTable.geometry.kind == .stage2 {
            let livePtdump = runner.execute(.ptdump)
            #expect("ptdump\n" + view.ptdump().text + "end\n" == livePtdump, "\(name): ptdump differs")
        }
        // The live view and the image view agree everywhere.
        let liveView = TableInspector(table: runner.table.pageTable)
        #expect(liveView.wideText().text == view.wideText().text)
        #expect(liveView.lint().text == view.lint().text)
        #expect(liveView.stats().stats.text == view.stats().stats.text)
        #expect(TableDiff.changes(TableSnapshot(liveView, name: "live"), TableSnapshot(view, name: "image")).isEmpty)
    }

    @Test func kernelRegisterValues() throws {
        // 4K, 40-bit IPA: start level 1 (SL0=1), PS=48 bits, HA, VS.
        let g = try TableGeometry.stage2(granule: .size4K, iaBits: 40, lpa2: false)
        #expect(KernelRegisters.vtcr(g) == 0x802d_3558)
        // LPA2 adds DS and PS=52 bits.
        let l = try TableGeometry.stage2(granule: .size4K, iaBits: 52, lpa2: true)
        let v = KernelRegisters.vtcr(l)
        #expect(v & 0x1_0000_0000 != 0)
        #expect((v >> 16) & 7 == 6)
        #expect(v & 0x3f == 12)
        let d = try RegisterDecoding(ImageRegisters(vtcr: v, vttbr: 0x4000_0000))
        #expect(d.geometry == l)
        // 64K: 52-bit BADDR keeps PA[51:48] in bits [5:2].
        let f = DescriptorFormat(granule: .size64K, lpa2: false)
        let ttbr = KernelRegisters.ttbr(root: 0x000f_0000_4000_0000, format: f)
        #expect(ttbr == 0x0000_0000_4000_003c)
        #expect(KernelRegisters.root(fromTTBR: ttbr, fiftyTwoBit: true) == 0x000f_0000_4000_0000)
        // Hyp TCR_EL2: RES1 bits, T0SZ, TG0.
        let h = try TableGeometry.hyp(granule: .size16K, vaBits: 48, lpa2: false)
        let tcr = KernelRegisters.tcr(h)
        #expect(tcr & 0x8080_0000 == 0x8080_0000)
        #expect(tcr & 0x3f == 16)
        #expect((tcr >> 14) & 3 == 2)
        let hd = try RegisterDecoding(ImageRegisters(tcr: tcr, ttbr: 0x4000_0000))
        #expect(hd.geometry == h)
    }

    @Test func sidecarParsing() throws {
        let r = try ImageRegisters.parse("# comment\nbase=0x1000\nvtcr = 0x802d3558\nvttbr=0x1000\nfwb=0x1\n", fileName: "x.regs")
        #expect(r.base == 0x1000 && r.vtcr == 0x802d_3558 && r.vttbr == 0x1000 && r.fwb == true)
        #expect(throws: ImageError.self) { try ImageRegisters.parse("bogus=1\n", fileName: "x.regs") }
        #expect(throws: ImageError.self) { try ImageRegisters.parse("base=zz\n", fileName: "x.regs") }
        #expect(throws: ImageError.self) { try ImageRegisters.parse("base\n", fileName: "x.regs") }
    }
}

// MARK: - Hand-built images

/// Builds a raw image page by page: stage-2 4K by default, base 0x40000000,
/// root at page 0.
struct HandImage {
    var geometry: TableGeometry
    var base: UInt64 = 0x4000_0000
    var pages: [Int: [Int: UInt64]] = [:]
    var pageCount: Int
    var vtcr: UInt64?

    init(iaBits: Int = 40, pages: Int = 8) throws {
        geometry = try TableGeometry.stage2(granule: .size4K, iaBits: iaBits, lpa2: false)
        pageCount = pages
    }

    func pa(_ page: Int) -> UInt64 { base + UInt64(page) * 4096 }
    func table(_ page: Int) -> UInt64 { pa(page) | 3 }
    static let rw: UInt64 = 0x0040_0000_0000_07fc   // XN=10, AF, SH=IS, S2AP RW, MemAttr 0xf
    static func page(_ pa: UInt64, attrs: UInt64 = rw) -> UInt64 { pa | attrs | 3 }
    static func block(_ pa: UInt64, attrs: UInt64 = rw) -> UInt64 { pa | attrs | 1 }

    subscript(page: Int, index: Int) -> UInt64 {
        get { pages[page]?[index] ?? 0 }
        set { pages[page, default: [:]][index] = newValue }
    }

    func bytes() -> [UInt8] {
        var b = [UInt8](repeating: 0, count: pageCount * 4096)
        for (p, entries) in pages {
            for (i, v) in entries {
                withUnsafeBytes(of: v.littleEndian) { raw in
                    for k in 0..<8 { b[p * 4096 + i * 8 + k] = raw[k] }
                }
            }
        }
        return b
    }

    var registers: ImageRegisters {
        ImageRegisters(base: base, vtcr: vtcr ?? KernelRegisters.vtcr(geometry), vttbr: base)
    }

    func write(_ dir: String, name: String = "h.img", truncateTo: Int? = nil) throws -> String {
        let path = dir + "/" + name
        var b = bytes()
        if let t = truncateTo { b = Array(b.prefix(t)) }
        try Data(b).write(to: URL(fileURLWithPath: path))
        try registers.text.write(toFile: path + ".regs", atomically: true, encoding: .utf8)
        return path
    }

    func open(_ dir: String, truncateTo: Int? = nil) throws -> TableInspector<TableImage> {
        let path = try write(dir, truncateTo: truncateTo)
        return try TableInspector<TableImage>.open(image: path, sidecar: path + ".regs", overrides: ImageRegisters()).view
    }
}

@Suite struct ImageLintTests {
    func rules(_ view: TableInspector<TableImage>) -> Set<LintFinding.Rule> {
        Set(view.lint().findings.map(\.rule))
    }

    @Test func cleanImageHasNoFindings() throws {
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var h = try HandImage()
        h[0, 1] = HandImage.block(0x8000_0000)
        let report = try h.open(dir).lint()
        #expect(report.isClean, "\(report.text)")
    }

    @Test func blockAtLevelTheGranuleDoesNotAllow() throws {
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // 4K with 48-bit descriptors: no level-0 blocks.
        var h = try HandImage(iaBits: 48)
        #expect(h.geometry.startLevel == Level(0))
        h[0, 1] = HandImage.block(0x80_0000_0000)
        var view = try h.open(dir)
        #expect(rules(view).contains(.blockLevel))
        // The block encoding at level 3 is reserved.
        var g = try HandImage()
        g[0, 0] = g.table(2)
        g[2, 0] = g.table(3)
        g[3, 5] = HandImage.block(0x8000_5000)
        view = try g.open(dir)
        #expect(rules(view) == [.blockLevel])
    }

    @Test func tableDescriptorAtLastLevel() throws {
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var h = try HandImage()
        h[0, 0] = h.table(2)
        h[2, 0] = h.table(3)
        h[3, 0] = h.table(4)
        let f = try h.open(dir).lint().findings
        #expect(f.contains { $0.rule == .tableAtLastLevel && $0.message.contains("table memory") })
    }

    @Test func res0BitsSet() throws {
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var h = try HandImage()
        h[0, 1] = HandImage.block(0x8000_0000) | (1 << 11)
        h[0, 2] = h.table(2) | (1 << 63)  // stage-2 table descriptors have no attributes
        h[2, 0] = HandImage.block(0xc000_0000) | (1 << 48)  // above the 48-bit OA field
        let f = try h.open(dir).lint().findings.filter { $0.rule == .res0 }
        #expect(f.count == 3)
    }

    @Test func outputAddressBeyondPS() throws {
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var h = try HandImage()
        // PS = 0b010: 40 bits.
        h.vtcr = (KernelRegisters.vtcr(h.geometry) & ~0x7_0000) | 0x2_0000
        h[0, 1] = HandImage.block(0x100_0000_0000)
        let view = try h.open(dir)
        #expect(rules(view) == [.beyondPS])
        let t = view.translate(0x4000_0000)
        #expect(t.fault?.kind == .addressSize && t.fault?.level == Level(1) && t.fault?.dfsc == 0x01)
    }

    @Test func misalignedBlock() throws {
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var h = try HandImage()
        h[0, 0] = h.table(2)
        h[2, 3] = HandImage.block(0x8000_1000)
        #expect(rules(try h.open(dir)) == [.misaligned])
    }

    @Test func tablePointerOutsideTheImage() throws {
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var h = try HandImage()
        h[0, 0] = 0x7000_0000 | 3
        let view = try h.open(dir)
        let f = view.lint().findings
        #expect(f.map(\.rule) == [.tableOutside])
        #expect(view.canonicalDump().report.problems.first?.kind == .outside)
        let t = view.translate(0x1000)
        #expect(t.stop != nil && t.fault == nil)
    }

    @Test func tableReachedTwiceLoopAndShared() throws {
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var h = try HandImage()
        h[0, 0] = h.table(2)
        h[0, 1] = h.table(2)  // shared
        h[2, 7] = h.table(0)  // loop back to the root
        h[2, 8] = h.table(2)  // loop to itself
        let view = try h.open(dir)
        let f = view.lint().findings.filter { $0.rule == .tableReachedTwice }
        #expect(f.count == 3)
        // Every view terminates and reports.
        #expect(view.canonicalDump().report.problemCount == 3)
        #expect(view.ptdump().report.problemCount == 3)
        #expect(view.stats().report.problemCount == 3)
    }

    @Test func reservedMemAttr() throws {
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var h = try HandImage()
        let attrs = (HandImage.rw & ~0x3c) | (0x4 << 2)  // Normal outer-NC with inner 0b00
        h[0, 1] = HandImage.block(0x8000_0000, attrs: attrs)
        #expect(rules(try h.open(dir)) == [.memAttrReserved])
        #expect(AttributeDecoder.memAttr(0xf, fwb: false).reserved == false)
        #expect(AttributeDecoder.memAttr(0x6, fwb: true).reserved == false)
        #expect(AttributeDecoder.memAttr(0x8, fwb: true).reserved == true)
    }

    @Test func writableAndExecutable() throws {
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var h = try HandImage()
        h[0, 1] = HandImage.block(0x8000_0000, attrs: HandImage.rw & ~(3 << 53))
        let r = try h.open(dir).lint()
        #expect(r.findings.map(\.rule) == [.writeExecute])
        #expect(r.findings.first?.rule.severity == .warning)
    }

    @Test func pagesThatCouldBeOneBlock() throws {
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var h = try HandImage()
        h[0, 0] = h.table(2)
        h[2, 1] = h.table(3)
        for i in 0..<512 { h[3, i] = HandImage.page(0x8020_0000 + UInt64(i) * 4096) }
        let r = try h.open(dir).lint()
        #expect(r.findings.map(\.rule) == [.couldBeBlock])
        #expect(r.findings.first!.message.hasPrefix("512 4K pages at 0x200000 (PA 0x80200000) could be one 2M block"))
        #expect(r.tlbisSaved == 512)
        // One page out of line: no advice.
        h[3, 17] = HandImage.page(0x9000_0000)
        #expect(try h.open(dir).lint().isClean)
    }
}

@Suite struct ImageTranslateTests {
    /// 4K, 48-bit IPA: levels 0 … 3, one root page.
    func chain(_ dir: String) throws -> HandImage {
        var h = try HandImage(iaBits: 48)
        h[0, 0] = h.table(1)
        h[1, 0] = h.table(2)
        h[2, 0] = h.table(3)
        h[3, 0] = HandImage.page(0x8000_0000)
        h[3, 2] = HandImage.page(0x8000_2000, attrs: HandImage.rw & ~KVMPT_S2_AF_BIT)
        return h
    }

    @Test func translatesThroughEveryLevel() throws {
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let view = try chain(dir).open(dir)
        let t = view.translate(0x123)
        #expect(t.steps.map(\.level) == [Level(0), Level(1), Level(2), Level(3)])
        #expect(t.outputAddress == 0x8000_0123)
        #expect(t.steps[0].tablePhysicalAddress == 0x4000_0000)
        #expect(t.steps[3].tablePhysicalAddress == 0x4000_3000)
        #expect(view.translationText(t).contains("-> PA 0x0000000080000123 (page 4K)"))
    }

    @Test func translationFaultAtEachLevel() throws {
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let view = try chain(dir).open(dir)
        let cases: [(UInt64, Int8)] = [(1 << 39, 0), (1 << 30, 1), (1 << 21, 2), (1 << 12, 3)]
        for (addr, level) in cases {
            let f = try #require(view.translate(addr).fault)
            #expect(f.kind == .translation && f.level == Level(level) && f.stage2)
            #expect(f.dfsc == UInt64(0x04 + Int(level)))
        }
        // Out of the 48-bit range: level 0.
        #expect(view.translate(1 << 48).fault?.level == Level(0))
    }

    @Test func accessFlagFaultOnlyWithoutHA() throws {
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var h = try chain(dir)
        var t = try h.open(dir).translate(0x2000)
        #expect(t.fault == nil && !t.notes.isEmpty)  // the kernel's VTCR sets HA
        h.vtcr = KernelRegisters.vtcr(h.geometry) & ~KVMPT_VTCR_HA
        t = try h.open(dir).translate(0x2000)
        #expect(t.fault?.kind == .accessFlag && t.fault?.level == Level(3) && t.fault?.dfsc == 0x0b)
    }

    @Test func blockWhereNoneIsAllowedFaults() throws {
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var h = try HandImage(iaBits: 48)
        h[0, 0] = HandImage.block(0)
        let f = try h.open(dir).translate(0x1000).fault
        #expect(f?.kind == .translation && f?.level == Level(0))
    }

    @Test func liveTableTranslatesLikeGetLeaf() throws {
        let runner = try runToEnd("stage2 granule=16K ia_bits=40\nmap 0x2000000 32M 0x80000000 rw\nmap 0x10000 16K 0x90000000 r\n")
        let view = TableInspector(table: runner.table.pageTable)
        let t = view.translate(0x2345678)
        #expect(t.outputAddress == 0x8034_5678 && t.leafLevel == Level(2))
        #expect(view.translate(0x10004).outputAddress == 0x9000_0004)
    }
}

let KVMPT_S2_AF_BIT: UInt64 = 1 << 10

@Suite struct ImageDiffTests {
    let before = """
        stage2 granule=4K ia_bits=40
        map 0x40000000 4M 0x80000000 rw
        map 0x100000 8K 0x90000000 r
        dump
        """
    var after: String {
        before + """

            unmap 0x40200000 4K
            wrprotect 0x40000000 2M
            map 0x200000 4K 0x91000000 rwx
            dump
            """
    }

    @Test func diffOfTwoImages() throws {
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (a, _) = try saveAndOpen(try runToEnd(before), dir: dir, name: "a.img")
        let (b, _) = try saveAndOpen(try runToEnd(after), dir: dir, name: "b.img")
        let sa = TableSnapshot(a, name: "a"), sb = TableSnapshot(b, name: "b")
        let changes = TableDiff.changes(sa, sb)
        #expect(changes.count == 3)
        #expect(changes[0].start == 0x200000 && changes[0].old == nil && changes[0].new != nil)
        #expect(changes[1].start == 0x4000_0000 && changes[1].end == 0x4020_0000)
        #expect(changes[2].start == 0x4020_0000 && changes[2].end == 0x4040_0000 && changes[2].new == nil)
        let text = TableDiff.text(sa, sb, changes: changes)
        #expect(text.contains("~ 0x0000000040000000-0x0000000040200000     2M: PA 0x80000000 rw-"))
        #expect(TableDiff.changes(sa, sa).isEmpty)
    }

    @Test func diffOfTwoTranscriptsMatchesImages() throws {
        let ta = try TableSnapshot.parseTranscript(try runScript(before), name: "a.out")
        let tb = try TableSnapshot.parseTranscript(try runScript(after), name: "b.out")
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (a, _) = try saveAndOpen(try runToEnd(before), dir: dir, name: "a.img")
        let (b, _) = try saveAndOpen(try runToEnd(after), dir: dir, name: "b.img")
        #expect(TableDiff.changes(ta, tb) == TableDiff.changes(TableSnapshot(a, name: "a"), TableSnapshot(b, name: "b")))
        #expect(throws: ImageError.self) { try TableSnapshot.parseTranscript("dump\nL9 zz\nend\n", name: "x") }
        #expect(throws: ImageError.self) { try TableSnapshot.parseTranscript("no header\n", name: "x") }
    }

    @Test func blockVersusPagesWithTheSameMappingIsNoChange() throws {
        let a = try TableSnapshot.parseTranscript(try runScript("stage2 granule=4K ia_bits=40\nmap 0x200000 2M 0x80200000 rw\ndump\n"), name: "a")
        let b = try TableSnapshot.parseTranscript(try runScript("stage2 granule=4K ia_bits=40\nmap 0x200000 2M 0x80200000 rw\nsplit 0x200000 2M\ndump\n"), name: "b")
        #expect(a.entries.count == 1)
        #expect(TableDiff.changes(a, b).isEmpty)
    }
}

@Suite struct ImageStatsTests {
    @Test func statsCountTablesLeavesAndBlocks() throws {
        let runner = try runToEnd("stage2 granule=4K ia_bits=40\nmap 0x40000000 2M 0x80000000 rw\nmap 0x0 8K 0x90000000 r\n")
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (view, _) = try saveAndOpen(runner, dir: dir)
        let s = view.stats().stats
        #expect(s.tablesPerLevel.map(\.count) == [2, 2, 1])
        #expect(s.leavesPerLevel.map(\.count) == [0, 1, 2])
        #expect(s.mappedBytes == 0x20_2000 && s.blockBytes == 0x20_0000)
        #expect(s.tableBytes == 5 * 4096)
        #expect(s.text.contains("99.6%"))
    }
}

@Suite struct ImageHostileTests {
    @Test func truncatedImage() throws {
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var h = try HandImage(pages: 4)
        h[0, 0] = h.table(3)
        h[3, 0] = HandImage.page(0x8000_0000)
        // The table page at page 3 is cut in half.
        let view = try h.open(dir, truncateTo: 3 * 4096 + 2048)
        let r = view.lint()
        #expect(r.findings.first?.rule == .tableOutside && r.findings.first!.message.contains("truncated"))
        // A root cut short cannot be opened.
        #expect(throws: ImageError.self) { try h.open(dir, truncateTo: 4096 + 100) }
    }

    @Test func allOnesDescriptors() throws {
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let h = try HandImage(pages: 4)
        let path = dir + "/ones.img"
        try Data(repeating: 0xff, count: 4 * 4096).write(to: URL(fileURLWithPath: path))
        try h.registers.text.write(toFile: path + ".regs", atomically: true, encoding: .utf8)
        let view = try TableInspector<TableImage>.open(image: path, sidecar: path + ".regs", overrides: ImageRegisters()).view
        let r = view.lint()
        #expect(r.counts[.tableOutside] == 1024)
        #expect(view.canonicalDump().report.problemCount == 1024)
        #expect(view.canonicalDump().report.problems.count == WalkReport.limit)
        #expect(view.ptdump().report.problemCount == 1024)
        #expect(view.translate(0).stop != nil)
        _ = view.wideText()
        _ = view.jsonLines()
    }

    @Test func rootOutsideTheImage() throws {
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let h = try HandImage(pages: 4)
        let path = try h.write(dir)
        #expect(throws: ImageError.self) {
            try TableInspector<TableImage>.open(image: path, sidecar: path + ".regs", overrides: ImageRegisters(vttbr: 0x1000_0000))
        }
        // A concatenated root whose second page is missing.
        #expect(throws: ImageError.self) {
            try TableInspector<TableImage>.open(image: path, sidecar: path + ".regs", overrides: ImageRegisters(vttbr: 0x4000_3000))
        }
    }

    @Test func reservedAndInconsistentRegisters() throws {
        let good = KernelRegisters.vtcr(try TableGeometry.stage2(granule: .size4K, iaBits: 40, lpa2: false))
        func errors(_ v: UInt64) throws -> [String] {
            let d = try RegisterDecoding(ImageRegisters(vtcr: v, vttbr: 0x4000_0000))
            return d.errors
        }
        #expect(try errors(good).isEmpty)
        #expect(try errors(good | 0xc000).contains { $0.contains("TG0=0b11") })              // TG0 reserved
        #expect(try errors(good | 0x7_0000).contains { $0.contains("PS=0b111") })            // PS reserved
        #expect(try errors((good & ~0xc0) | 0xc0).contains { $0.contains("S2InvalidSL") })   // SL0=0b11 with 4K
        #expect(try errors((good & ~0xc0) | 0x00).contains { $0.contains("S2InconsistentSL") }) // level 2 for 40 bits
        #expect(try errors((good & ~0x3f) | 10).contains { $0.contains("T0SZ=10 is out of range") })
        #expect(try errors(good | (1 << 33)).contains { $0.contains("SL2") })                // SL2 without DS
        // 64K with SL0=0b11.
        let g64 = KernelRegisters.vtcr(try TableGeometry.stage2(granule: .size64K, iaBits: 40, lpa2: false))
        #expect(try errors(g64 | 0xc0).contains { $0.contains("S2InvalidSL") })
        // A root beyond PS.
        let d = try RegisterDecoding(ImageRegisters(vtcr: good, vttbr: 0x0000_ff00_0000_0000 | 0))
        #expect(d.errors.contains { $0.contains("address size fault") } == false)  // 48-bit PS holds it
        let small = (good & ~0x7_0000) | 0x2_0000
        let d2 = try RegisterDecoding(ImageRegisters(vtcr: small, vttbr: 0x0000_ff00_0000_0000))
        #expect(d2.errors.contains { $0.contains("address size fault") })
        // Missing pairs.
        #expect(throws: ImageError.self) { try RegisterDecoding(ImageRegisters(vtcr: good)) }
        #expect(throws: ImageError.self) { try RegisterDecoding(ImageRegisters()) }
        #expect(throws: ImageError.self) { try RegisterDecoding(ImageRegisters(vtcr: good, vttbr: 0, tcr: 0, ttbr: 0)) }
    }

    @Test func badFilesAndRegions() throws {
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(FileManager.default.createFile(atPath: dir + "/empty.img", contents: Data()))
        #expect(throws: ImageError.self) { try TableImage(regions: [(0, dir + "/empty.img")], granule: .size4K) }
        #expect(throws: ImageError.self) { try TableImage(regions: [(0, dir + "/missing.img")], granule: .size4K) }
        #expect(throws: ImageError.self) { try TableImage(regions: [(0, dir)], granule: .size4K) }
        try Data(repeating: 0, count: 8192).write(to: URL(fileURLWithPath: dir + "/a.img"))
        #expect(throws: ImageError.self) { try TableImage(regions: [(0, dir + "/a.img"), (4096, dir + "/a.img")], granule: .size4K) }
        #expect(throws: ImageError.self) { try TableImage(regions: [(3, dir + "/a.img")], granule: .size4K) }
        let img = try TableImage(regions: [(0x1000, dir + "/a.img"), (0x10000, dir + "/a.img")], granule: .size4K)
        #expect(img.table(at: 0x1000) != nil && img.table(at: 0x2000) != nil)
        #expect(img.table(at: 0x3000) == nil && img.table(at: 0x0) == nil && img.table(at: 0x11000) != nil)
        #expect(img.table(at: 0x2008) == nil)  // would run past the end
        #expect(img.table(at: UInt64.max - 7) == nil)
    }

    @Test func regionsAssembleOneTable() throws {
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var h = try HandImage(pages: 3)
        h[0, 0] = 0x7000_0000 | 3  // in a second region
        let path = try h.write(dir)
        var second = [UInt8](repeating: 0, count: 4096)
        withUnsafeBytes(of: HandImage.block(0x8000_0000).littleEndian) { for k in 0..<8 { second[8 + k] = $0[k] } }
        try Data(second).write(to: URL(fileURLWithPath: dir + "/second.img"))
        let view = try TableInspector<TableImage>.open(image: path, sidecar: path + ".regs", overrides: ImageRegisters(),
                                                       extraRegions: [(0x7000_0000, dir + "/second.img")]).view
        #expect(view.translate(0x20_1234).outputAddress == 0x8000_1234)
        #expect(view.lint().isClean)
    }

    @Test func sparse64GiBImageDecodesInTimeOfItsTables() throws {
        let dir = try imageScratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/big.img"
        let size: UInt64 = 64 << 30
        guard FileManager.default.createFile(atPath: path, contents: nil),
              let fh = FileHandle(forWritingAtPath: path) else { Issue.record("cannot create"); return }
        try fh.truncate(atOffset: size)
        // Root (2 pages) and one L2 table in the last 12K of the image.
        let rootOffset = size - 4 * 4096
        var bytes = [UInt8](repeating: 0, count: 3 * 4096)
        let l2 = rootOffset + 2 * 4096
        withUnsafeBytes(of: (l2 | 3).littleEndian) { for k in 0..<8 { bytes[k] = $0[k] } }
        withUnsafeBytes(of: HandImage.block(0x8000_0000).littleEndian) { for k in 0..<8 { bytes[2 * 4096 + 8 + k] = $0[k] } }
        try fh.seek(toOffset: rootOffset)
        fh.write(Data(bytes))
        try fh.close()
        let g = try TableGeometry.stage2(granule: .size4K, iaBits: 40, lpa2: false)
        let regs = ImageRegisters(base: 0, vtcr: KernelRegisters.vtcr(g), vttbr: rootOffset)
        let clock = ContinuousClock()
        let t0 = clock.now
        let view = try TableInspector<TableImage>.open(image: path, sidecar: nil, overrides: regs).view
        let dump = view.canonicalDump()
        #expect(dump.report.isClean)
        #expect(dump.text == "L1 0x0000000000000000 0x0000000000002003\nL2 0x0000000000200000 0x00400000800007fd\n")
        #expect(view.lint().isClean)
        #expect(clock.now - t0 < .seconds(5))
    }
}
