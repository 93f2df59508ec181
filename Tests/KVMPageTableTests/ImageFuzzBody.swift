// The body of the FuzzImageDecode libFuzzer target (FuzzTesting/), kept
// here so that `swift test` replays FuzzTesting/FailCases/FuzzImageDecode
// through the same code (FailCasesTests.swift). FuzzTesting links this file
// through a symlink, as it does PropertyFuzzDecoder.swift.
import KVMPageTable

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Image-decoding target: arbitrary bytes become registers and a physical
/// memory image, which go through the same path as `kvmpt decode` /
/// `translate` / `lint` / `stats` / `diff`.
///
/// Input layout (missing header bytes read as zero):
///
/// | byte | meaning |
/// | --- | --- |
/// | 0 | bit 0 kind (0 stage-2, 1 hyp); bits 1-2 granule (0 4K, 1 16K, 2 64K, 3 4K); bit 3 LPA2; bit 4 FWB (stage-2; hyp: no fwb); bits 5-6 register mode; bit 7 layout (0 raw, 1 sparse) |
/// | 1 | input bits: 25 + byte % 28 (25...52) |
/// | 2 | bits 0-2 base: 0, 0x1000, 0x4000_0000, 0x8000_0000, 0x1_0000_0000, 0xf_ffff_0000_0000 - 2^16, 2^64 - 2^20, or M & ~7; bits 3-7 extra VTTBR/TTBR bits (CnP, VMID, BADDR[51:48] in [5:2]) |
/// | 3 | bits 0-3 root page index in the image; bit 4 root + 8 (misaligned); bit 5 root one page below the image; bits 6-7 unused |
/// | 4-11 | M, a little-endian 64-bit word (register mode 2: XORed into the control register; mode 3: the control register; base choice 7: the base) |
/// | 12 | bits 0-5 split: the image is cut at this page into two files (0: one file); bits 6-7 the gap in pages between them |
/// | 13 | raw layout: zero-extend the image to this many pages (bits 0-5); sparse layout: 1 + byte % 32 pages |
/// | 14-15 | seed of the translated addresses |
/// | 16... | raw layout: the image bytes; sparse layout: 12-byte records (page, index lo, index hi, type, 8-byte value) each writing one descriptor |
///
/// Register modes: 0 and 1 use what Linux programs for the geometry
/// (`KernelRegisters`: VTCR_EL2/TCR_EL2 and the TTBR of the root); 2 XORs M
/// into that control register; 3 takes M as the control register. A
/// geometry kvmpt refuses (bad input bits for the granule) falls back to
/// mode 3.
///
/// Sparse record types (type % 4): 0 M as is; 1 a table descriptor to page
/// (M % pages) of the image, M's top 12 bits as table attributes; 2 a leaf
/// (page when bit 2 of type is set, block otherwise) at output address M,
/// with attribute bits from M's low bits; 3 a table descriptor to a page
/// just past the image or to a misaligned address.
///
/// Oracle: nothing crashes or hangs; errors are thrown `ImageError`s; every
/// guarded walk visits each table page at most once (the recorded table
/// pages are distinct, readable, and as many as the walk report counts) and
/// all walks agree on what they met; lint reports exactly the walk's
/// structural problems; translating the address of any entry the walk
/// recorded either faults/stops or ends at that entry with its output
/// address; the canonical dump parses back (as a transcript) to the walk's
/// entries; a table diffed against itself has no changes.
enum ImageFuzzEntry {
    static let headerSize = 16
    static let recordSize = 12
    static let maxImageBytes: UInt64 = 64 << 20
    static let sampledEntries = 64
    /// KVMPT_IMAGE_FUZZ_TRACE=1: print how far each input got (for triage).
    static let tracing = getenv("KVMPT_IMAGE_FUZZ_TRACE") != nil
    static func trace(_ s: @autoclosure () -> String) { if tracing { print("FuzzImageDecode: " + s()) } }

    /// Runs one input; returns what went wrong, or nil.
    static func decode(_ bytes: [UInt8]) -> String? {
        var header = [UInt8](repeating: 0, count: headerSize)
        for i in 0..<min(headerSize, bytes.count) { header[i] = bytes[i] }
        let body = bytes.count > headerSize ? Array(bytes[headerSize...]) : []
        let m = (4..<12).reduce(UInt64(0)) { $0 | UInt64(header[$1]) << UInt64(8 * ($1 - 4)) }

        let kind: TableKind = header[0] & 1 == 0 ? .stage2 : .hyp
        let granule: Granule = [.size4K, .size16K, .size64K, .size4K][Int(header[0] >> 1) & 3]
        let lpa2 = header[0] & 8 != 0 && granule != .size64K
        let fwb = header[0] & 16 != 0
        var mode = Int(header[0] >> 5) & 3
        let sparse = header[0] & 0x80 != 0
        let inputBits = 25 + Int(header[1]) % 28
        let page = granule.pageSize

        let bases: [UInt64] = [0, 0x1000, 0x4000_0000, 0x8000_0000, 0x1_0000_0000,
                               0x000f_ffff_0000_0000 &- 0x1_0000, 0 &- 0x10_0000, m & ~7]
        let base = bases[Int(header[2]) & 7]
        var root = base &+ UInt64(header[3] & 0xf) &* page
        if header[3] & 0x10 != 0 { root &+= 8 }
        if header[3] & 0x20 != 0 { root = base &- page }

        let format = DescriptorFormat(granule: granule, lpa2: lpa2)
        let geometry: TableGeometry? = {
            do throws(TableGeometry.Refusal) {
                return kind == .stage2 ? try .stage2(granule: granule, iaBits: inputBits, lpa2: lpa2)
                                       : try .hyp(granule: granule, vaBits: inputBits, lpa2: lpa2)
            } catch { return nil }
        }()
        if geometry == nil { mode = 3 }
        var control: UInt64
        if let geometry, mode != 3 {
            control = kind == .stage2 ? KernelRegisters.vtcr(geometry) : KernelRegisters.tcr(geometry)
            if mode == 2 { control ^= m }
        } else {
            control = m
        }
        var ttbr = KernelRegisters.ttbr(root: root, format: format)
        let extra = UInt64(header[2] >> 3)  // 5 bits
        ttbr |= extra & 1                                // CnP
        ttbr |= ((extra >> 1) & 3) << 2                  // BADDR[51:48] / RES0 bits [5:2]
        ttbr |= ((extra >> 3) & 3) << 48                 // VMID / ASID
        var regs = ImageRegisters(base: base)
        if kind == .stage2 {
            regs.vtcr = control
            regs.vttbr = ttbr
            regs.fwb = fwb
        } else {
            regs.tcr = control
            regs.ttbr = ttbr
        }

        // Registers first: decoding them never fails but for a missing pair.
        let decoded: RegisterDecoding
        do throws(ImageError) { decoded = try RegisterDecoding(regs) } catch {
            trace("registers refused: \(error)")
            return nil
        }
        _ = decoded.text
        if (try? ImageRegisters.parse(regs.text, fileName: "fuzz.regs")) != regs {
            return "registers do not survive their sidecar text:\n\(regs.text)"
        }

        // The image: one or two temporary files.
        var image = ImageBytes(length: 0)
        if sparse {
            let pages = 1 + UInt64(header[13]) % 32
            image.length = pages &* page
            var i = 0
            while i + recordSize <= body.count {
                let r = body[i..<(i + recordSize)]
                let p = UInt64(r[r.startIndex]) % pages
                let index = (UInt64(r[r.startIndex + 1]) | UInt64(r[r.startIndex + 2]) << 8) % UInt64(granule.entriesPerTable)
                let type = r[r.startIndex + 3]
                let v = (4..<12).reduce(UInt64(0)) { $0 | UInt64(r[r.startIndex + $1]) << UInt64(8 * ($1 - 4)) }
                let pte: UInt64
                switch type & 3 {
                case 0: pte = v
                case 1: pte = format.pte(fromPhysical: base &+ (v % pages) &* page) | 3 | (v & 0xfff0_0000_0000_0000)
                case 2:
                    let attrs = (v & 0x3ff) << 2 | (v >> 10 & 0x7ff) << 51
                    pte = format.pte(fromPhysical: v) | attrs | (type & 4 != 0 ? 3 : 1)
                default:
                    let target = v & 1 == 0 ? base &+ (pages &+ (v >> 1) % 4) &* page : base &+ (v >> 1) % (pages &* page)
                    pte = format.pte(fromPhysical: target) | 3
                }
                image.writes.append((p &* page &+ index &* 8, pte))
                i += recordSize
            }
        } else {
            image.raw = body
            image.length = max(UInt64(body.count), UInt64(header[13] & 0x3f) &* page)
        }
        image.length = min(image.length, maxImageBytes)
        let split = UInt64(header[12] & 0x3f) &* page
        let gap = UInt64(header[12] >> 6) &* page

        var files: [(physicalAddress: UInt64, path: String)] = []
        defer { for f in files { unlink(f.path) } }
        if split > 0, split < image.length {
            guard let a = image.write(from: 0, to: split), let b = image.write(from: split, to: image.length) else {
                return nil  // no temporary file: not the library's fault
            }
            files = [(base, a), (base &+ split &+ gap, b)]
        } else {
            guard let a = image.write(from: 0, to: image.length) else { return nil }
            files = [(base, a)]
        }

        let view: TableInspector<TableImage>
        do throws(ImageError) {
            view = try TableInspector<TableImage>.open(regions: files, registers: decoded)
        } catch {
            trace("not opened: \(error)")
            if error.message.isEmpty { return "an empty ImageError" }
            return nil
        }
        trace("opened \(decoded.geometry.map { "\($0.kind) \($0.granule) \($0.inputBits) bits, start level \($0.startLevel.rawValue), \($0.rootPages) root page(s)" } ?? "?"), \(files.count) file(s), \(image.length) bytes")
        return check(view, decoded, seed: UInt16(header[14]) | UInt16(header[15]) << 8)
    }

    /// Every view of a decoded table, and the oracle.
    static func check(_ view: TableInspector<TableImage>, _ decoded: RegisterDecoding, seed: UInt16) -> String? {
        let geometry = view.geometry
        let (dump, dumpReport) = view.canonicalDump()
        let (entries, tables, report) = view.entries()

        // Each table page once, and only readable ones.
        var seen = Set<UInt64>()
        for t in tables {
            guard seen.insert(t.physicalAddress).inserted else {
                return "table page \(Hex.short(t.physicalAddress)) walked twice"
            }
            guard view.readable(t.physicalAddress) else {
                return "walked table page \(Hex.short(t.physicalAddress)) is not readable"
            }
        }
        if tables.count != report.tablesWalked {
            return "entries() recorded \(tables.count) table pages, the walk report says \(report.tablesWalked)"
        }
        if report.code != 0 { return "the guarded walk stopped with \(report.code)" }

        // Every walk meets the same things.
        func same(_ r: WalkReport, _ what: String) -> String? {
            if r.tablesWalked != report.tablesWalked || r.problemCount != report.problemCount || r.counts != report.counts || r.code != report.code {
                return "\(what) walk differs from the entries walk: \(r.tablesWalked) tables, \(r.problemCount) problems \(r.counts) vs \(report.tablesWalked), \(report.problemCount) \(report.counts)"
            }
            return nil
        }
        if let p = same(dumpReport, "canonical dump") { return p }
        if view.kind == .stage2 {
            let (text, r) = view.ptdump()
            if let p = same(r, "ptdump") { return p }
            _ = text.count
        }
        let (stats, statsReport) = view.stats()
        if let p = same(statsReport, "stats") { return p }
        _ = stats.text
        let (wide, wideReport) = view.wideText()
        if let p = same(wideReport, "wide") { return p }
        _ = wide.count
        let (json, jsonReport) = view.jsonLines()
        if let p = same(jsonReport, "json") { return p }
        _ = json.count
        let valid = entries.filter(\.isValid).count
        let leaves = stats.leavesPerLevel.reduce(0) { $0 + $1.count }
        if leaves != valid || stats.invalidEntries != entries.count - valid {
            return "stats count \(leaves) leaves and \(stats.invalidEntries) invalid entries; the walk recorded \(valid) and \(entries.count - valid)"
        }

        // Lint reports the walk's structural problems, no more, no fewer.
        let lint = view.lint()
        _ = lint.text
        let outside = lint.counts[.tableOutside, default: 0], twice = lint.counts[.tableReachedTwice, default: 0]
        if outside != report.counts[.outside, default: 0] || twice != report.counts[.reachedTwice, default: 0] {
            return "lint counts \(outside) table-outside and \(twice) table-reached-twice; the walk met \(report.counts)"
        }

        // Translation agrees with the walk for the entries it recorded.
        let format = view.format
        let step = max(1, entries.count / sampledEntries)
        for e in stride(from: 0, to: entries.count, by: step).map({ entries[$0] }) {
            let t = view.translate(e.address)
            _ = view.translationText(t)
            if t.fault != nil || t.stop != nil {
                continue
            }
            if !e.isValid { return "translate(\(Hex.short(e.address))) succeeded through the invalid entry \(Hex.short(e.descriptor)) at \(e.level)" }
            guard let last = t.steps.last, last.descriptor == e.descriptor, t.leafLevel == e.level,
                  t.outputAddress == format.physical(fromPTE: e.descriptor) else {
                return "translate(\(Hex.short(e.address))) ends at \(t.leafLevel.map { "\($0)" } ?? "nil") \(t.steps.last.map { Hex.short($0.descriptor) } ?? "-") -> \(t.outputAddress.map(Hex.short) ?? "nil"); the walk recorded \(e.level) \(Hex.short(e.descriptor))\n\(view.translationText(t))"
            }
        }
        // And a few addresses of its own, one beyond the input range.
        let limit = geometry.inputLimit
        var rng = UInt64(seed) &* 0x9e37_79b9_7f4a_7c15 | 1
        var addresses: [UInt64] = [0, limit &- 1, limit]
        for _ in 0..<4 {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
            addresses.append(rng % limit)
        }
        for a in addresses {
            let t = view.translate(a)
            _ = view.translationText(t)
            if a >= limit, t.fault == nil { return "translate(\(Hex.short(a))) beyond the \(geometry.inputBits)-bit input range did not fault" }
            if t.fault == nil, t.stop == nil, t.outputAddress == nil { return "translate(\(Hex.short(a))): no fault, no stop and no output address" }
        }

        // The canonical dump reads back as a transcript with the same entries.
        let config = ScriptConfiguration(kind: view.kind, granule: view.granule, inputBits: geometry.inputBits, lpa2: geometry.lpa2)
        let snapshot = TableSnapshot(kind: view.kind, format: format, inputBits: geometry.inputBits, entries: entries, name: "image")
        do throws(ImageError) {
            let back = try TableSnapshot.parseTranscript("dump\n" + dump + "end\n", name: "dump", configuration: config)
            if back.entries != entries {
                return "the canonical dump parses back to \(back.entries.count) entries, the walk recorded \(entries.count)"
            }
        } catch {
            return "the canonical dump does not parse back: \(error)"
        }
        let changes = TableDiff.changes(snapshot, snapshot)
        if !changes.isEmpty { return "a table diffed against itself has \(changes.count) changes" }
        _ = TableDiff.text(snapshot, snapshot, changes: changes, fwb: (decoded.fwb, decoded.fwb))
        trace("\(report.tablesWalked) table pages, \(entries.count) entries, \(report.problemCount) problems \(report.counts), \(lint.total) lint findings")
        return nil
    }

    /// The image to write: raw bytes, zero-extended to `length`, then
    /// 8-byte descriptor writes.
    struct ImageBytes {
        var length: UInt64
        var raw: [UInt8] = []
        var writes: [(offset: UInt64, value: UInt64)] = []

        /// Writes bytes [from, to) of the image to a new temporary file
        /// (in /dev/shm when it exists) and returns its path.
        func write(from: UInt64, to: UInt64) -> String? {
            var template = Array((access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp").utf8CString.dropLast())
            template += Array("/kvmpt-fuzz-image-XXXXXX".utf8CString)
            let fd = mkstemp(&template)
            guard fd >= 0 else { return nil }
            defer { close(fd) }
            let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            func fail() -> String? { unlink(path); return nil }
            if ftruncate(fd, off_t(to - from)) != 0 { return fail() }
            if UInt64(raw.count) > from {
                let end = Int(min(UInt64(raw.count), to))
                let ok = raw[Int(from)..<end].withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) == $0.count }
                if !ok { return fail() }
            }
            for w in writes where w.offset >= from && w.offset + 8 <= to {
                var v = w.value.littleEndian
                if pwrite(fd, &v, 8, off_t(w.offset - from)) != 8 { return fail() }
            }
            return path
        }
    }
}
