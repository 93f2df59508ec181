import CKVMPageTable
import Foundation
import Testing
@testable import KVMPageTable

// MARK: - Helpers

/// Reads a fixture transcript next to this file.
private func ptdumpFixtureText(_ name: String) throws -> String {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent(name)
    return try String(contentsOf: url, encoding: .utf8)
}

/// The text of every `ptdump` … `end` block of a transcript, each line
/// ending in "\n".
private func ptdumpBlocks(_ transcript: String) -> [String] {
    var blocks: [String] = []
    var current: String?
    for line in transcript.split(separator: "\n", omittingEmptySubsequences: false) {
        if var block = current {
            if line == "end" {
                blocks.append(block)
                current = nil
            } else {
                block += line + "\n"
                current = block
            }
        } else if line == "ptdump" {
            current = ""
        }
    }
    return blocks
}

/// Leaf descriptor bits the tests build entries from.
private enum PtdumpTestBits {
    static let xnShift = UInt64(KVMPT_S2_XN.trailingZeroBitCount)
    static func xn(_ v: UInt64) -> UInt64 { v << xnShift }
    /// XN[1:0] = 0b10: what the kernel sets for a mapping without `x`.
    static let noExec = xn(0b10)
    static let block = KVMPT_PTE_VALID
    static let page = KVMPT_PTE_VALID | KVMPT_PTE_TYPE
    static let rw = KVMPT_S2_S2AP_R | KVMPT_S2_S2AP_W
}

/// A sparse stage-2 table that yields the visits of the kernel's LEAF-only
/// walk over `[0, 2^ia_bits)`: depth-first in address order, leaves at their
/// level, empty entries at the level where the walk meets them. Table pages
/// exist exactly where a leaf lies below them (as after the kernel's map and
/// unmap, which frees emptied tables).
private struct PtdumpModelTable {
    struct Key: Hashable { var level: Int8; var address: UInt64 }

    let granule: Granule
    let inputBits: Int
    let startLevel: Level
    var leaves: [Key: UInt64] = [:]

    init(granule: Granule, inputBits: Int, lpa2: Bool = false) throws {
        let geometry = try TableGeometry.stage2(granule: granule, iaBits: inputBits, lpa2: lpa2)
        self.granule = granule
        self.inputBits = inputBits
        self.startLevel = geometry.startLevel
    }

    /// A stage-2 leaf descriptor as the kernel builds it for `prot` letters.
    func descriptor(level: Level, phys: UInt64, prot: String) -> UInt64 {
        var d = level.isLast ? PtdumpTestBits.page : PtdumpTestBits.block
        d |= phys & 0x0000_ffff_ffff_f000
        let memAttr: UInt64 = prot.contains("d") ? KVMPT_MT_S2_DEVICE_nGnRE
            : prot.contains("n") ? KVMPT_MT_S2_NORMAL_NC : KVMPT_MT_S2_NORMAL
        d |= memAttr << 2
        d |= KVMPT_S2_SH_IS << 8 | KVMPT_S2_AF
        if prot.contains("r") { d |= KVMPT_S2_S2AP_R }
        if prot.contains("w") { d |= KVMPT_S2_S2AP_W }
        if !prot.contains("x") { d |= PtdumpTestBits.noExec }
        return d
    }

    /// Maps as `kvm_pgtable_stage2_map` does on an empty range: each step the
    /// largest block that address, physical address and size allow.
    mutating func map(_ addr: UInt64, _ size: UInt64, _ phys: UInt64, _ prot: String) {
        var (a, p, left) = (addr, phys, size)
        while left > 0 {
            var level = max(startLevel, granule.minimumBlockLevel)
            while true {
                let s = granule.size(at: level)
                if a % s == 0 && p % s == 0 && left >= s { break }
                level = level.next
            }
            let s = granule.size(at: level)
            leaves[Key(level: level.rawValue, address: a)] = descriptor(level: level, phys: p, prot: prot)
            a += s; p += s; left -= s
        }
    }

    /// Removes the leaves inside `[addr, addr + size)`.
    mutating func unmap(_ addr: UInt64, _ size: UInt64) {
        for key in leaves.keys where key.address >= addr && key.address < addr + size {
            leaves[key] = nil
        }
    }

    /// Rewrites the leaves whose range meets `[addr, addr + size)`.
    mutating func update(_ addr: UInt64, _ size: UInt64, _ change: (UInt64) -> UInt64) {
        for (key, entry) in leaves {
            let end = key.address + granule.size(at: Level(key.level))
            if key.address < addr + size && end > addr { leaves[key] = change(entry) }
        }
    }

    /// Runs the walk, calling `visit(address, level, entry)` for every entry.
    func walk(_ visit: (UInt64, Level, UInt64) -> Void) {
        var tables = Set<Key>()
        for key in leaves.keys {
            var level = startLevel
            while level.rawValue < key.level {
                let s = granule.size(at: level)
                tables.insert(Key(level: level.rawValue, address: key.address & ~(s - 1)))
                level = level.next
            }
        }
        func table(_ level: Level, _ base: UInt64, _ count: Int) {
            let s = granule.size(at: level)
            for i in 0..<UInt64(count) {
                let a = base + i * s
                let key = Key(level: level.rawValue, address: a)
                if let entry = leaves[key] {
                    visit(a, level, entry)
                } else if tables.contains(key) {
                    table(level.next, a, granule.entriesPerTable)
                } else {
                    visit(a, level, 0)
                }
            }
        }
        let rootEntries = 1 << (inputBits - Int(granule.shift(at: startLevel)))
        table(startLevel, 0, rootEntries)
    }

    /// The printer after the whole walk.
    func ptdump() -> PtdumpPrinter {
        var printer = PtdumpPrinter(inputBits: inputBits, startLevel: startLevel, granule: granule)
        walk { printer.note(address: $0, level: $1, entry: $2) }
        return printer
    }
}

/// Parses a script number: decimal or 0x hex with an optional K/M/G/T suffix.
private func ptdumpScriptNumber(_ word: Substring) -> UInt64 {
    var text = word.lowercased()
    var scale: UInt64 = 1
    if let last = text.last, let i = "kmgt".firstIndex(of: last) {
        scale = 1 << (10 * UInt64("kmgt".distance(from: "kmgt".startIndex, to: i) + 1))
        text.removeLast()
    }
    let value = text.hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16)! : UInt64(text)!
    return value * scale
}

/// Replays the table operations of a ptdump fixture script on the sparse
/// model and returns the printer of every `ptdump` statement.
private func replayPtdumpScript(script: String) throws -> [PtdumpPrinter] {
    var table: PtdumpModelTable?
    var dumps: [PtdumpPrinter] = []
    for raw in script.split(separator: "\n") {
        let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
        let w = line.split(separator: " ")
        guard let op = w.first else { continue }
        switch op {
        case "stage2":
            var granule = Granule.size4K, bits = 0, lpa2 = false
            for option in w.dropFirst() {
                if option.hasPrefix("granule=") { granule = Granule(name: String(option.dropFirst(8)))! }
                if option.hasPrefix("ia_bits=") { bits = Int(option.dropFirst(8))! }
                if option == "lpa2" { lpa2 = true }
            }
            table = try PtdumpModelTable(granule: granule, inputBits: bits, lpa2: lpa2)
        case "map":
            table!.map(ptdumpScriptNumber(w[1]), ptdumpScriptNumber(w[2]), ptdumpScriptNumber(w[3]), String(w[4]))
        case "unmap":
            table!.unmap(ptdumpScriptNumber(w[1]), ptdumpScriptNumber(w[2]))
        case "wrprotect":
            table!.update(ptdumpScriptNumber(w[1]), ptdumpScriptNumber(w[2])) { $0 & ~KVMPT_S2_S2AP_W }
        case "test_clear_young":
            if w.count > 3 && w[3] == "mkold" {
                table!.update(ptdumpScriptNumber(w[1]), ptdumpScriptNumber(w[2])) { $0 & ~KVMPT_S2_AF }
            }
        case "relax_perms":
            let prot = w[2]
            table!.update(ptdumpScriptNumber(w[1]), 1) { e in
                var e = e
                if prot.contains("r") { e |= KVMPT_S2_S2AP_R }
                if prot.contains("w") { e |= KVMPT_S2_S2AP_W }
                if prot.contains("x") { e &= ~KVMPT_S2_XN }
                return e
            }
        case "ptdump":
            dumps.append(table!.ptdump())
        case "dump", "summary":
            break
        default:
            Issue.record("unexpected statement \(line)")
        }
    }
    return dumps
}

// MARK: - Tests

@Suite struct PtdumpPrinterTests {
    static let fixtures = [
        "ptdump-4k-ia40-empty",
        "ptdump-4k-ia40-prots-merge",
        "ptdump-4k-ia40-unmap-holes",
        "ptdump-4k-ia40-seq-retry",
        "ptdump-4k-ia42-concat8",
        "ptdump-4k-ia36-fwb-attrs",
        "ptdump-16k-ia44-blocks-pages",
        "ptdump-16k-ia52-lpa2",
        "ptdump-64k-ia42-blocks-pages",
    ]

    /// Every ptdump block of every fixture, from the visits of a model table
    /// built by replaying the fixture's script.
    @Test(arguments: fixtures)
    func reproducesFixture(_ name: String) throws {
        let expected = ptdumpBlocks(try ptdumpFixtureText(name + ".out"))
        let printers = try replayPtdumpScript(script: try ptdumpFixtureText(name + ".s2"))
        #expect(expected.count > 0)
        #expect(printers.count == expected.count)
        for (printer, text) in zip(printers, expected) {
            #expect(printer.text == text)
            // One marker line, then the closed runs.
            #expect(printer.lineCount == text.split(separator: "\n").count - 1)
        }
    }

    /// An empty 4K ia40 table: 1024 empty level-1 visits (two concatenated
    /// root pages) give only the marker line.
    @Test func emptyTablePrintsOnlyTheMarker() throws {
        var printer = PtdumpPrinter(inputBits: 40, startLevel: Level(1), granule: .size4K)
        #expect(printer.text == "")  // nothing before the first visit
        for i in 0..<UInt64(1024) {
            printer.note(address: i << 30, level: Level(1), entry: 0)
        }
        let expected = ptdumpBlocks(try ptdumpFixtureText("ptdump-4k-ia40-empty.out"))
        #expect(printer.text == "---[ Guest IPA ]---\n")
        #expect(printer.text == expected[0])
        #expect(printer.text == expected[2])
        #expect(printer.lineCount == 0)
    }

    /// The visit sequence written out by hand: one 4K page at 1G in a 4K
    /// ia40 table (root level 1, 2 × 512 entries).
    @Test func onePageHandWrittenVisits() throws {
        let page = KVMPT_PTE_VALID | KVMPT_PTE_TYPE | 0x8000_0000 | KVMPT_MT_S2_NORMAL << 2
            | PtdumpTestBits.rw | KVMPT_S2_SH_IS << 8 | KVMPT_S2_AF | PtdumpTestBits.noExec
        var printer = PtdumpPrinter(inputBits: 40, startLevel: Level(1), granule: .size4K)
        printer.note(address: 0, level: Level(1), entry: 0)          // L1[0] empty
        // L1[1] is a table: L2[0] is a table holding the page.
        printer.note(address: 0x4000_0000, level: Level(3), entry: page)
        for i in 1..<UInt64(512) { printer.note(address: 0x4000_0000 + i << 12, level: Level(3), entry: 0) }
        for i in 1..<UInt64(512) { printer.note(address: 0x4000_0000 + i << 21, level: Level(2), entry: 0) }
        for i in 2..<UInt64(1024) { printer.note(address: i << 30, level: Level(1), entry: 0) }
        let expected = ptdumpBlocks(try ptdumpFixtureText("ptdump-4k-ia40-empty.out"))[1]
        #expect(printer.text == expected)
        #expect(printer.text == """
            ---[ Guest IPA ]---
            0x0000000000000000-0x0000000040000000           1G 1
            0x0000000040000000-0x0000000040001000           4K 3   R W PXNUXN AF    
            0x0000000040001000-0x0000000040200000        2044K 3
            0x0000000040200000-0x0000000080000000        1022M 2

            """)
    }

    /// The kernel's own descriptors (the fixture's `dump`, FWB MemAttr
    /// encodings, device and normal-NC) print the fixture's ptdump.
    @Test func kernelDescriptorsFromDump() throws {
        let transcript = try ptdumpFixtureText("ptdump-4k-ia36-fwb-attrs.out")
        var table = try PtdumpModelTable(granule: .size4K, inputBits: 36)
        var inDump = false
        for line in transcript.split(separator: "\n") {
            if line == "dump" { inDump = true; continue }
            if line == "end" { inDump = false }
            guard inDump else { continue }
            let f = line.split(separator: " ")
            let level = Int8(f[0].dropFirst())!
            let address = UInt64(f[1].dropFirst(2), radix: 16)!
            let entry = UInt64(f[2].dropFirst(2), radix: 16)!
            let isTable = level < 3 && entry & 3 == 3
            if !isTable { table.leaves[.init(level: level, address: address)] = entry }
        }
        #expect(table.leaves.count == 8)
        #expect(table.ptdump().text == ptdumpBlocks(transcript)[0])
    }

    /// The size column: KiB scaled by 1024 while it divides evenly.
    @Test func sizeUnits() {
        func s(_ bytes: UInt64) -> String {
            let (count, unit) = PtdumpPrinter.scaledSize(bytes)
            return "\(count)\(Character(Unicode.Scalar(unit)))"
        }
        #expect(s(4 << 10) == "4K")
        #expect(s(2044 << 10) == "2044K")
        #expect(s(2 << 20) == "2M")
        #expect(s(1022 << 20) == "1022M")
        #expect(s(1 << 30) == "1G")
        #expect(s(1920 << 40) == "1920T")
        #expect(s(1 << 50) == "1P")
        #expect(s(3 << 50) == "3P")
        #expect(s(1 << 60) == "1E")
        #expect(s(15 << 60) == "15E")
        #expect(s(1 << 40 + 1 << 12) == "1073741828K")
        #expect(s(1 << 50 + 1 << 30) == "1048577G")
        #expect(s(0) == "0E")  // note_page() runs through to the last unit
    }

    /// Units from K to E in whole lines, and a count wider than `%9lu`.
    @Test func sizeColumnInLines() {
        var printer = PtdumpPrinter(inputBits: 63, startLevel: Level(0), granule: .size4K)
        var address: UInt64 = 0
        var level: Int8 = 0
        // Alternate levels so that every visit closes the run before it.
        for size: UInt64 in [1 << 60, 1 << 50, 1 << 40, 1 << 30, 1 << 20, 1 << 12, 1 << 40 + 1 << 12] {
            printer.note(address: address, level: Level(level), entry: 0)
            address += size
            level ^= 1
        }
        printer.note(address: address, level: Level(level), entry: 0)
        #expect(printer.text == """
            ---[ Guest IPA ]---
            0x0000000000000000-0x1000000000000000           1E 0
            0x1000000000000000-0x1004000000000000           1P 1
            0x1004000000000000-0x1004010000000000           1T 0
            0x1004010000000000-0x1004010040000000           1G 1
            0x1004010040000000-0x1004010040100000           1M 0
            0x1004010040100000-0x1004010040101000           4K 1
            0x1004010040101000-0x1004020040102000   1073741828K 0

            """)
        #expect(printer.lineCount == 7)
    }

    /// A 16K ia52 (LPA2, start level 0) table: P units for level-0 runs;
    /// the level-0 run from 0x0004800000000000 to the end stays unprinted.
    @Test func petabyteRunAtLevelZero() throws {
        var table = try PtdumpModelTable(granule: .size16K, inputBits: 52, lpa2: true)
        #expect(table.startLevel == Level(0))
        table.map(1 << 50, 16 << 10, 0, "r")
        let text = table.ptdump().text
        #expect(text == """
            ---[ Guest IPA ]---
            0x0000000000000000-0x0004000000000000           1P 0
            0x0004000000000000-0x0004000000004000          16K 3   R   PXNUXN AF    
            0x0004000000004000-0x0004000002000000       32752K 3
            0x0004000002000000-0x0004001000000000       65504M 2
            0x0004001000000000-0x0004800000000000      131008G 1

            """)
    }

    /// A run ends when the level changes, even with equal (empty) bits, and
    /// when the compared bits change at the same level.
    @Test func levelAndAttributeChangesSplitRuns() {
        let rw = PtdumpTestBits.page | PtdumpTestBits.rw | KVMPT_S2_AF | PtdumpTestBits.noExec
        var printer = PtdumpPrinter(inputBits: 40, startLevel: Level(1), granule: .size4K)
        printer.note(address: 0x0000, level: Level(3), entry: 0)
        printer.note(address: 0x1000, level: Level(3), entry: 0)
        printer.note(address: 0x2000, level: Level(2), entry: 0)        // level change
        printer.note(address: 0x4000, level: Level(3), entry: rw)
        printer.note(address: 0x5000, level: Level(3), entry: rw & ~KVMPT_S2_AF)  // AF
        printer.note(address: 0x6000, level: Level(3), entry: rw & ~KVMPT_S2_S2AP_W)  // W
        printer.note(address: 0x7000, level: Level(2), entry: rw & ~KVMPT_S2_S2AP_W)  // level
        printer.note(address: 0x9000, level: Level(2), entry: 0)
        #expect(printer.text == """
            ---[ Guest IPA ]---
            0x0000000000000000-0x0000000000002000           8K 3
            0x0000000000002000-0x0000000000004000           8K 2
            0x0000000000004000-0x0000000000005000           4K 3   R W PXNUXN AF    
            0x0000000000005000-0x0000000000006000           4K 3   R W PXNUXN       
            0x0000000000006000-0x0000000000007000           4K 3   R   PXNUXN AF    
            0x0000000000007000-0x0000000000009000           8K 2   R   PXNUXN AF    

            """)
    }

    /// Memory type, shareability, output address and software bits are not
    /// compared: such neighbours share a line.
    @Test func uncomparedBitsMerge() {
        let base = PtdumpTestBits.block | PtdumpTestBits.rw | KVMPT_S2_AF | PtdumpTestBits.noExec
        var printer = PtdumpPrinter(inputBits: 40, startLevel: Level(1), granule: .size4K)
        printer.note(address: 0x0000_0000, level: Level(2), entry: base | KVMPT_MT_S2_NORMAL << 2 | 0x1000_0000)
        printer.note(address: 0x0020_0000, level: Level(2), entry: base | KVMPT_MT_S2_DEVICE_nGnRE << 2 | 0x9000_0000)
        printer.note(address: 0x0040_0000, level: Level(2),
                     entry: base | KVMPT_MT_S2_NORMAL_NC << 2 | KVMPT_S2_SH_IS << 8 | KVMPT_PTE_LEAF_ATTR_HI_SW)
        printer.note(address: 0x0060_0000, level: Level(2), entry: 0)
        #expect(printer.text == """
            ---[ Guest IPA ]---
            0x0000000000000000-0x0000000000600000           6M 2   R W PXNUXN AF BLK

            """)
    }

    /// Each XN[1:0] value has its own column text.
    @Test func executeNeverColumn() {
        var printer = PtdumpPrinter(inputBits: 40, startLevel: Level(1), granule: .size4K)
        for xn: UInt64 in 0...3 {
            printer.note(address: xn << 12, level: Level(3), entry: PtdumpTestBits.page | KVMPT_S2_S2AP_R | KVMPT_S2_AF | PtdumpTestBits.xn(xn))
        }
        printer.note(address: 4 << 12, level: Level(3), entry: 0)
        #expect(printer.text == """
            ---[ Guest IPA ]---
            0x0000000000000000-0x0000000000001000           4K 3   R   px ux  AF    
            0x0000000000001000-0x0000000000002000           4K 3   R   PXNux  AF    
            0x0000000000002000-0x0000000000003000           4K 3   R   PXNUXN AF    
            0x0000000000003000-0x0000000000004000           4K 3   R   px UXN AF    

            """)
    }

    /// Non-zero invalid entries: owner annotations (bits [9:2]) are not
    /// compared and merge with empty entries; a locked entry (bit 10, the AF
    /// position) has non-zero masked bits and prints with the `F` column.
    @Test func invalidEntries() {
        let ownerAnnotation: UInt64 = 1 << 2  // owner id 1 in KVM_INVALID_PTE_OWNER_MASK
        var printer = PtdumpPrinter(inputBits: 40, startLevel: Level(1), granule: .size4K)
        printer.note(address: 0x0000, level: Level(3), entry: 0)
        printer.note(address: 0x1000, level: Level(3), entry: ownerAnnotation)
        printer.note(address: 0x2000, level: Level(3), entry: KVMPT_INVALID_PTE_LOCKED)
        printer.note(address: 0x3000, level: Level(3), entry: 0)
        #expect(printer.text == """
            ---[ Guest IPA ]---
            0x0000000000000000-0x0000000000002000           8K 3
            0x0000000000002000-0x0000000000003000           4K 3 F     px ux  AF    

            """)
    }

    /// The run still open at the end is never printed; a single visit gives
    /// the marker only.
    @Test func openRunIsNeverPrinted() {
        var printer = PtdumpPrinter(inputBits: 40, startLevel: Level(1), granule: .size4K)
        printer.note(address: 0, level: Level(1), entry: PtdumpTestBits.block | PtdumpTestBits.rw | KVMPT_S2_AF)
        #expect(printer.text == "---[ Guest IPA ]---\n")
        // Equal visits extend the open run and print nothing.
        for i in 1..<UInt64(1024) {
            printer.note(address: i << 30, level: Level(1), entry: PtdumpTestBits.block | PtdumpTestBits.rw | KVMPT_S2_AF | i << 30)
        }
        #expect(printer.text == "---[ Guest IPA ]---\n")
        #expect(printer.lineCount == 0)
    }

    /// More text than one seq_file page: printed whole (one marker, every
    /// line), and the buffer the kernel would end with is doubled once.
    @Test func seqFileRetryTextIsWhole() throws {
        let expected = ptdumpBlocks(try ptdumpFixtureText("ptdump-4k-ia40-seq-retry.out"))
        let printers = try replayPtdumpScript(script: try ptdumpFixtureText("ptdump-4k-ia40-seq-retry.s2"))
        let big = printers[0]
        #expect(big.text == expected[0])
        #expect(big.bytes.count > 4096)
        #expect(big.text.components(separatedBy: "---[ Guest IPA ]---").count == 2)
        #expect(big.lineCount == 67)  // 1G hole, 64 pages, 1792K and 1022M holes
        #expect(big.seqFileBufferSize == 8192)
        #expect(big.seqFileRetries == 1)
        // The second dump fits in one page.
        #expect(printers[1].text == expected[1])
        #expect(printers[1].seqFileBufferSize == 4096)
        #expect(printers[1].seqFileRetries == 0)
    }

    /// The seq_file buffer starts at the granule size and holds text strictly
    /// shorter than itself.
    @Test func seqFileBufferSize() {
        var printer = PtdumpPrinter(inputBits: 42, startLevel: Level(2), granule: .size64K)
        #expect(printer.seqFileBufferSize == 65536)
        // 72-byte lines (with flags) until the text is exactly 2 × 64K - 1 … 2 × 64K.
        let entry = PtdumpTestBits.page | KVMPT_S2_S2AP_R | KVMPT_S2_AF
        var i: UInt64 = 0
        while printer.bytes.count < 65536 {
            printer.note(address: i << 16, level: Level(3), entry: entry | (i & 1) * KVMPT_S2_S2AP_W)
            i += 1
        }
        #expect(printer.bytes.count >= 65536)
        #expect(printer.seqFileBufferSize == 131072)
        #expect(printer.seqFileRetries == 1)
    }

    /// Many runs: every alternate page differs, so every visit closes a run.
    @Test func largeOutput() {
        let count: UInt64 = 1 << 17
        var printer = PtdumpPrinter(inputBits: 48, startLevel: Level(0), granule: .size4K)
        let a = PtdumpTestBits.page | KVMPT_S2_S2AP_R | KVMPT_S2_AF | PtdumpTestBits.noExec
        let b = a | KVMPT_S2_S2AP_W
        for i in 0..<count {
            printer.note(address: i << 12, level: Level(3), entry: i & 1 == 0 ? a : b)
        }
        #expect(printer.lineCount == Int(count) - 1)
        let lines = printer.text.split(separator: "\n")
        #expect(lines.count == Int(count))
        #expect(lines[1] == "0x0000000000000000-0x0000000000001000           4K 3   R   PXNUXN AF    ")
        #expect(lines.last == "0x000000001fffe000-0x000000001ffff000           4K 3   R   PXNUXN AF    ")
        #expect(printer.seqFileBufferSize >= printer.bytes.count + 1)
    }
}
