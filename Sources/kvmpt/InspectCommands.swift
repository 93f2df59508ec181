import ArgumentParser
import KVMPageTable

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Exit codes shared by decode, translate, lint, diff and stats:
//   0  done, nothing to report
//   1  done, and something to report: lint findings, diff changes,
//      translation faults, or structural problems of the table
//   2  the input cannot be decoded (missing or unreadable file, bad sidecar,
//      unusable registers, root outside the image)

/// Where an image comes from and the registers that describe it.
struct ImageOptions: ParsableArguments {
    @Option(name: .long, help: "Physical address of the image's first byte (overrides base= in IMG.regs).")
    var base: String?
    @Option(name: .long, help: "VTCR_EL2 of a stage-2 table (overrides IMG.regs).")
    var vtcr: String?
    @Option(name: .long, help: "VTTBR_EL2 of a stage-2 table (overrides IMG.regs).")
    var vttbr: String?
    @Option(name: .long, help: "TCR_EL2 of a hyp table (overrides IMG.regs).")
    var tcr: String?
    @Option(name: .long, help: "TTBR0_EL2 of a hyp table (overrides IMG.regs).")
    var ttbr: String?
    @Flag(name: .long, inversion: .prefixedNo, help: "HCR_EL2.FWB: read stage-2 MemAttr with the FWB encoding (overrides fwb= in IMG.regs).")
    var fwb: Bool?
    @Option(name: .customLong("region"), help: ArgumentHelp("Add FILE to the image at physical address PA (repeatable).", valueName: "PA:FILE"))
    var regions: [String] = []

    func number(_ s: String?, _ name: String) throws(ImageError) -> UInt64? {
        guard let s else { return nil }
        guard let v = ImageRegisters.parseNumber(s) else { throw ImageError("--\(name): '\(s)' is not a number") }
        return v
    }

    func overrides() throws(ImageError) -> ImageRegisters {
        ImageRegisters(base: try number(base, "base"), vtcr: try number(vtcr, "vtcr"), vttbr: try number(vttbr, "vttbr"),
                       tcr: try number(tcr, "tcr"), ttbr: try number(ttbr, "ttbr"), fwb: fwb)
    }

    func extraRegions() throws(ImageError) -> [(physicalAddress: UInt64, path: String)] {
        var out: [(physicalAddress: UInt64, path: String)] = []
        for r in regions {
            guard let colon = r.firstIndex(of: ":"),
                  let pa = ImageRegisters.parseNumber(r[..<colon]) else {
                throw ImageError("--region '\(r)': expected PA:FILE, e.g. 0x40000000:part0.img")
            }
            let path = String(r[r.index(after: colon)...])
            guard !path.isEmpty else { throw ImageError("--region '\(r)': no file name") }
            out.append((pa, path))
        }
        return out
    }

    /// Registers from IMG.regs (when present) and the overrides.
    func registers(image: String?) throws(ImageError) -> ImageRegisters {
        try TableInspector<TableImage>.loadRegisters(sidecar: image.map { $0 + ".regs" }, overrides: overrides())
    }

    /// Maps the image and views its table.
    func open(image: String?) throws(ImageError) -> (view: TableInspector<TableImage>, registers: RegisterDecoding) {
        let extra = try extraRegions()
        if image == nil && extra.isEmpty { throw ImageError("no image: give IMG or --region PA:FILE") }
        return try TableInspector<TableImage>.open(image: image ?? "", sidecar: image.map { $0 + ".regs" },
                                                   overrides: overrides(), extraRegions: extra)
    }
}

/// Prints `kvmpt: message` on standard error and exits with `code`.
func fail(_ message: CustomStringConvertible, code: Int32 = 2) -> ExitCode {
    Output.flush()
    Output.err("kvmpt: \(message)\n")
    return ExitCode(code)
}

/// Reports a walk's structural problems on standard error; true when any.
func reportProblems(_ report: WalkReport, image: String?) -> Bool {
    guard !report.isClean else { return false }
    Output.flush()
    let name = image ?? "image"
    for p in report.problems { Output.err("kvmpt: \(name): \(p)\n") }
    if report.problemCount > report.problems.count {
        Output.err("kvmpt: \(name): … \(report.problemCount - report.problems.count) more problems\n")
    }
    return true
}

struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode a saved table image: canonical dump, ptdump, wide or JSON ranges, or the registers.",
        discussion: """
            IMG is a raw little-endian physical-memory image (byte 0 at the base PA); IMG.regs, when \
            present, gives base, vtcr+vttbr (stage-2) or tcr+ttbr (hyp) and fwb. Options override it. \
            Exit 0 when the table decodes cleanly, 1 when the walk met problems (pointers outside the \
            image, tables reached twice; listed on standard error), 2 when the input cannot be decoded.
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case canonical, ptdump, wide, json
    }

    @Argument(help: "The image file (optional with --region).")
    var image: String?
    @OptionGroup var options: ImageOptions
    @Option(name: .long, help: "canonical (the dump statement's lines), ptdump (the kernel's stage2_page_tables), wide, or json (one object per range).")
    var format: Format = .wide
    @Flag(name: .long, help: "Print the decoded registers and their inconsistencies instead of the table.")
    var regs = false
    @Flag(name: .long, help: "Print canonical/ptdump text without the dump/ptdump and end lines.")
    var bare = false

    func run() throws {
        if regs {
            let decoded: RegisterDecoding
            do throws(ImageError) {
                decoded = try RegisterDecoding(try options.registers(image: image))
            } catch { throw fail(error) }
            Output.out(decoded.text)
            guard Output.flush() else { throw ExitCode(1) }
            if !decoded.errors.isEmpty || decoded.geometry == nil { throw ExitCode(2) }
            return
        }
        let view: TableInspector<TableImage>
        do throws(ImageError) { view = try options.open(image: image).view } catch { throw fail(error) }
        let text: String
        let report: WalkReport
        switch format {
        case .canonical:
            let r = view.canonicalDump()
            text = bare ? r.text : "dump\n" + r.text + "end\n"
            report = r.report
        case .ptdump:
            guard view.kind == .stage2 else { throw fail("--format ptdump: ptdump is the stage-2 debugfs view; this is a hyp table") }
            let r = view.ptdump()
            text = bare ? r.text : "ptdump\n" + r.text + "end\n"
            report = r.report
        case .wide:
            (text, report) = view.wideText()
        case .json:
            (text, report) = view.jsonLines()
        }
        Output.out(text)
        guard Output.flush() else { throw ExitCode(1) }
        if reportProblems(report, image: image) { throw ExitCode(1) }
    }
}

struct Translate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Walk addresses through a saved table as the MMU would: each lookup, then the PA or the fault.",
        discussion: "Exit 0 when every address translates, 1 when any faults or leaves the image, 2 on bad input.")

    @Argument(help: "The image file.")
    var image: String
    @Argument(help: "Input addresses (IPA for stage-2, VA for hyp), hex 0x… or decimal.")
    var addresses: [String]
    @OptionGroup var options: ImageOptions

    func run() throws {
        var addrs: [UInt64] = []
        for a in addresses {
            guard let v = ImageRegisters.parseNumber(a) else { throw fail("'\(a)' is not an address") }
            addrs.append(v)
        }
        let view: TableInspector<TableImage>
        do throws(ImageError) { view = try options.open(image: image).view } catch { throw fail(error) }
        var bad = false
        for a in addrs {
            let t = view.translate(a)
            if t.fault != nil || t.stop != nil { bad = true }
            Output.out(view.translationText(t))
        }
        guard Output.flush() else { throw ExitCode(1) }
        if bad { throw ExitCode(1) }
    }
}

struct Lint: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a saved table: architecture rules, structure, W+X, and where blocks would save TLBIs.",
        discussion: """
            Rules: block-level, table-at-last-level, res0, oa-beyond-ps, misaligned, table-outside, \
            table-reached-twice, memattr-reserved (errors); write-exec (warning); could-be-block (advice). \
            Exit 0 when clean, 1 with findings, 2 when the input cannot be decoded.
            """)

    @Argument(help: "The image file (optional with --region).")
    var image: String?
    @OptionGroup var options: ImageOptions

    func run() throws {
        let view: TableInspector<TableImage>
        do throws(ImageError) { view = try options.open(image: image).view } catch { throw fail(error) }
        let report = view.lint()
        Output.out(report.text)
        guard Output.flush() else { throw ExitCode(1) }
        if !report.isClean { throw ExitCode(1) }
    }
}

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the input ranges whose mapping changed between two images or two dump transcripts.",
        discussion: """
            Each side is a saved image (with its .regs sidecar) or a transcript holding a 'dump' section \
            (the last one is used; the '# kvmpt v1' header gives the format). Exit 0 when the mappings \
            are the same, 1 when they differ, 2 on bad input.
            """)

    @Argument(help: "The old image or transcript.")
    var old: String
    @Argument(help: "The new image or transcript.")
    var new: String

    func snapshot(_ path: String) throws(ImageError) -> (TableSnapshot, Bool) {
        if Self.isTranscript(path) {
            guard let text = Self.readText(path) else { throw ImageError("\(path): cannot read") }
            return (try TableSnapshot.parseTranscript(text, name: path), false)
        }
        let (view, regs) = try TableInspector<TableImage>.open(image: path, sidecar: path + ".regs", overrides: ImageRegisters())
        let (entries, _, report) = view.entries()
        if !report.isClean {
            for p in report.problems { Output.err("kvmpt: \(path): \(p)\n") }
        }
        return (TableSnapshot(kind: view.kind, format: view.format, inputBits: view.geometry.inputBits,
                              entries: entries, name: path), regs.fwb)
    }

    static func isTranscript(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 16)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, 16) }
        guard n > 0 else { return false }
        let head = String(decoding: buf[0..<n], as: UTF8.self)
        return head.hasPrefix("# kvmpt") || head.hasPrefix("dump")
    }

    static func readText(_ path: String) -> String? {
        guard let bytes = try? InputFile.read(path) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    func run() throws {
        let a: TableSnapshot, b: TableSnapshot, fa: Bool, fb: Bool
        do throws(ImageError) {
            (a, fa) = try snapshot(old)
            (b, fb) = try snapshot(new)
        } catch { throw fail(error) }
        guard a.kind == b.kind else { throw fail("\(old) is a \(a.kind) table and \(new) a \(b.kind) table: nothing to compare") }
        let changes = TableDiff.changes(a, b)
        Output.out(TableDiff.text(a, b, changes: changes, fwb: (fa, fb)))
        guard Output.flush() else { throw ExitCode(1) }
        if !changes.isEmpty { throw ExitCode(1) }
    }
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Table pages per level, memory used, leaves per level and size, and block coverage of a saved table.",
        discussion: "Exit 0, or 1 when the walk met structural problems, 2 on bad input.")

    @Argument(help: "The image file (optional with --region).")
    var image: String?
    @OptionGroup var options: ImageOptions

    func run() throws {
        let view: TableInspector<TableImage>
        do throws(ImageError) { view = try options.open(image: image).view } catch { throw fail(error) }
        let (stats, report) = view.stats()
        let g = view.geometry
        Output.out("\(g.kind) granule=\(g.granule) \(g.kind == .stage2 ? "ia_bits" : "va_bits")=\(g.inputBits) start_level=\(g.startLevel.rawValue) root_pages=\(g.rootPages) lpa2=\(g.lpa2 ? 1 : 0)\n")
        Output.out(stats.text)
        guard Output.flush() else { throw ExitCode(1) }
        if reportProblems(report, image: image) { throw ExitCode(1) }
    }
}
