import CKVMPageTable

/// Something structurally wrong that a walk of an untrusted table met.
public struct StructuralProblem: Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public enum Kind: String, Hashable, Sendable {
        /// A table pointer leads outside the memory (or to a truncated page).
        case outside = "table-outside"
        /// A table page is reached a second time: a loop or a shared table.
        case reachedTwice = "table-reached-twice"
    }
    /// What went wrong.
    public let kind: Kind
    /// The level of the table entry that points.
    public let level: Level
    /// The first input address that entry covers.
    public let address: UInt64
    /// The table PA it points at.
    public let physicalAddress: UInt64
    /// Why the page cannot be read, for `.outside`.
    public let detail: String

    /// `L1 0x… table pointer …`.
    public var description: String {
        switch kind {
        case .outside:
            return "\(level) \(Hex.padded(address)): table pointer to \(Hex.short(physicalAddress)) leads outside the image: \(detail)"
        case .reachedTwice:
            return "\(level) \(Hex.padded(address)): table \(Hex.short(physicalAddress)) is reached a second time (a loop or a shared sub-table); not walked again"
        }
    }
}

/// What a guarded walk met besides its visits.
public struct WalkReport: Sendable {
    /// The problems met, the first ``WalkReport/limit`` of them.
    public var problems: [StructuralProblem] = []
    /// How many problems were met in all.
    public var problemCount = 0
    /// The walk's return code (0 unless a visitor stopped it).
    public var code: Int32 = 0
    /// Table pages walked, root pages included.
    public var tablesWalked = 0
    /// Problems kept in ``problems``.
    public static let limit = 1000

    /// Problems per kind, all of them counted.
    public var counts: [StructuralProblem.Kind: Int] = [:]

    mutating func add(_ p: StructuralProblem) {
        problemCount += 1
        counts[p.kind, default: 0] += 1
        if problems.count < Self.limit { problems.append(p) }
    }

    /// Whether the walk met nothing wrong.
    public var isClean: Bool { problemCount == 0 && code == 0 }
}

/// Wraps a visitor so that a walk over untrusted memory visits each table
/// page at most once (root pages count as visited from the start), skips
/// pointers that lead outside the memory, and records both.
public struct GuardedVisitor<Inner: Visitor>: Visitor {
    /// The wrapped visitor.
    public var inner: Inner
    /// What the walk met.
    public var report = WalkReport()
    /// Table pages reached so far.
    public var visited: Set<UInt64>
    let describeMiss: (UInt64) -> String
    let isReadable: (UInt64) -> Bool

    /// Wraps `inner`; `rootPages` are the root's page addresses,
    /// `isReadable` tells whether a table page can be read.
    public init(_ inner: Inner, rootPages: [UInt64], isReadable: @escaping (UInt64) -> Bool,
                describeMiss: @escaping (UInt64) -> String) {
        self.inner = inner
        self.isReadable = isReadable
        self.visited = Set(rootPages)
        self.describeMiss = describeMiss
        report.tablesWalked = rootPages.count
    }

    /// The inner visitor's flags.
    public var flags: WalkFlags { inner.flags }

    /// Passes every visit on.
    public mutating func visit(_ ctx: inout VisitContext, _ visit: Visit) -> Int32 {
        inner.visit(&ctx, visit)
    }

    /// Skips the entry (the guard refuses unreadable tables before the
    /// walker tries them, so this is only a safety net).
    public mutating func unreachableTable(_ ctx: VisitContext, physicalAddress: UInt64) -> Int32 {
        report.add(StructuralProblem(kind: .outside, level: ctx.level, address: ctx.addr,
                                     physicalAddress: physicalAddress, detail: describeMiss(physicalAddress)))
        return 0
    }

    /// Descends into each readable table page once.
    public mutating func shouldDescend(_ ctx: VisitContext, into physicalAddress: UInt64) -> Bool {
        guard isReadable(physicalAddress) else {
            report.add(StructuralProblem(kind: .outside, level: ctx.level, address: ctx.addr,
                                         physicalAddress: physicalAddress, detail: describeMiss(physicalAddress)))
            return false
        }
        guard visited.insert(physicalAddress).inserted else {
            report.add(StructuralProblem(kind: .reachedTwice, level: ctx.level, address: ctx.addr,
                                         physicalAddress: physicalAddress, detail: ""))
            return false
        }
        guard inner.shouldDescend(ctx, into: physicalAddress) else { return false }
        report.tablesWalked += 1
        return true
    }
}

/// One non-empty entry a walk met: a leaf (block or page), or an invalid
/// entry with bits set.
public struct EntryRecord: Hashable, Sendable {
    /// The first input address the entry covers.
    public let address: UInt64
    /// Its level.
    public let level: Level
    /// The raw descriptor.
    public let descriptor: UInt64
    /// Whether it is a valid leaf.
    public var isValid: Bool { descriptor & KVMPT_PTE_VALID != 0 }
}

/// One table page a walk met.
public struct TableRecord: Hashable, Sendable {
    /// The page's PA.
    public let physicalAddress: UInt64
    /// The level of its entries.
    public let level: Level
    /// The first input address it covers.
    public let address: UInt64
}

/// A read-only view of a stage-2 or hyp table in any ``TableMemory`` — a
/// saved image or a live arena — through the one ``Walker``: the canonical
/// dump, ptdump, wide and JSON ranges, translation traces, lint, statistics.
///
/// Every walk is guarded (``GuardedVisitor``): each table page is visited
/// at most once and pointers outside the memory are reported, never
/// followed, so hostile images neither hang nor crash a view.
public struct TableInspector<Memory: TableMemory> {
    /// The walker over the memory.
    public let walker: Walker<Memory>
    /// Stage-2 or hyp.
    public let kind: TableKind
    /// Output address size in bits (PS).
    public let outputBits: Int
    /// HCR_EL2.FWB (stage-2 MemAttr encoding).
    public let fwb: Bool
    /// VTCR_EL2.HA / TCR_EL2.HA: hardware manages the access flag.
    public let hardwareAccessFlag: Bool
    /// Explains why a PA cannot be read.
    public let describeMiss: (UInt64) -> String

    /// A view of the table rooted at `rootPhysicalAddress`.
    public init(memory: Memory, geometry: TableGeometry, rootPhysicalAddress: UInt64,
                outputBits: Int? = nil, fwb: Bool = false, hardwareAccessFlag: Bool = false,
                describeMiss: @escaping (UInt64) -> String = { "\(Hex.short($0)) is outside the memory" }) {
        self.walker = Walker(memory: memory, geometry: geometry, rootPhysicalAddress: rootPhysicalAddress)
        self.kind = geometry.kind
        self.outputBits = outputBits ?? geometry.format.outputAddressBits
        self.fwb = fwb
        self.hardwareAccessFlag = hardwareAccessFlag
        self.describeMiss = describeMiss
    }

    /// The geometry.
    public var geometry: TableGeometry { walker.geometry }
    /// The descriptor format.
    public var format: DescriptorFormat { walker.format }
    /// The granule.
    public var granule: Granule { walker.geometry.granule }

    /// Whether the table page at a PA can be read.
    public var readable: (UInt64) -> Bool {
        let memory = walker.memory
        return { memory.table(at: $0) != nil }
    }

    /// The root's page addresses.
    public var rootPages: [UInt64] {
        (0..<geometry.rootPages).map { walker.rootPhysicalAddress &+ UInt64($0) &* granule.pageSize }
    }

    /// Throws unless every root page is readable.
    public func validateRoot() throws(ImageError) {
        for pa in rootPages where walker.memory.table(at: pa) == nil {
            throw ImageError("root table page \(Hex.short(pa)) (\(geometry.kind == .stage2 ? "VTTBR_EL2" : "TTBR0_EL2").BADDR \(Hex.short(walker.rootPhysicalAddress)), \(geometry.rootPages) page\(geometry.rootPages == 1 ? "" : "s")) cannot be read: \(describeMiss(pa))")
        }
    }

    /// Walks the whole input range with `visitor`, guarded.
    public func guardedWalk<V: Visitor>(_ visitor: V) -> (visitor: V, report: WalkReport) {
        var g = GuardedVisitor(visitor, rootPages: rootPages, isReadable: readable, describeMiss: describeMiss)
        let r = walker.walk(0, size: geometry.inputLimit, visitor: &g)
        g.report.code = r
        return (g.inner, g.report)
    }

    // MARK: Canonical dump and ptdump

    /// FORMAT.md's canonical dump lines (each ending in `\n`, without the
    /// `dump`/`end` lines): for a saved image, exactly what `dump` printed.
    public func canonicalDump() -> (text: String, report: WalkReport) {
        let (v, report) = guardedWalk(CanonicalDumpVisitor(sink: DumpText(), geometry: geometry))
        return (v.sink.text, report)
    }

    /// The kernel's `stage2_page_tables` text for this table.
    public func ptdump() -> (text: String, report: WalkReport) {
        let printer = PtdumpPrinter(inputBits: geometry.inputBits, startLevel: geometry.startLevel,
                                    granule: granule)
        let (v, report) = guardedWalk(PtdumpVisitor(printer: printer))
        return (v.printer.text, report)
    }

    // MARK: Entries

    /// Every non-empty leaf-position entry in address order, and every
    /// table page walked.
    public func entries() -> (entries: [EntryRecord], tables: [TableRecord], report: WalkReport) {
        var roots: [TableRecord] = []
        let shift = granule.shift(at: Level(geometry.startLevel.rawValue - 1))
        for (i, pa) in rootPages.enumerated() {
            roots.append(TableRecord(physicalAddress: pa, level: geometry.startLevel,
                                     address: shift < 64 ? UInt64(i) << UInt64(shift) : 0))
        }
        let (v, report) = guardedWalk(EntryCollector(format: format, tables: roots))
        return (v.entries, v.tables, report)
    }
}

extension TableInspector where Memory == PageArena {
    /// A view of a live table.
    public init(table: any PageTable) {
        let fwb = (table as? Stage2PageTable)?.features.contains(.fwb) ?? false
        self.init(memory: table.arena, geometry: table.geometry, rootPhysicalAddress: table.rootPhysicalAddress,
                  outputBits: table.format.outputAddressBits, fwb: fwb,
                  hardwareAccessFlag: table.geometry.kind == .stage2)
    }
}

extension TableInspector where Memory == TableImage {
    /// Maps `regions` and views the table the registers describe; throws
    /// (naming every inconsistency) when the registers are unusable or the
    /// root cannot be read.
    public static func open(regions: [(physicalAddress: UInt64, path: String)],
                            registers: RegisterDecoding) throws(ImageError) -> TableInspector<TableImage> {
        let geometry = try registers.requireGeometry()
        let image = try TableImage(regions: regions, granule: geometry.granule)
        let view = TableInspector(memory: image, geometry: geometry,
                                  rootPhysicalAddress: registers.rootPhysicalAddress,
                                  outputBits: registers.outputBits, fwb: registers.fwb,
                                  hardwareAccessFlag: registers.ha,
                                  describeMiss: { [image] in image.whyUnreadable($0) })
        try view.validateRoot()
        return view
    }

    /// Opens `path` (at `registers.base`, or the sidecar's base) with
    /// `path.regs` and `overrides`.
    public static func open(image path: String, sidecar: String?, overrides: ImageRegisters,
                            extraRegions: [(physicalAddress: UInt64, path: String)] = []) throws(ImageError)
        -> (view: TableInspector<TableImage>, registers: RegisterDecoding) {
        if !path.isEmpty, access(path, R_OK) != 0 {
            throw ImageError("\(path): cannot open image: \(String(cString: strerror(errno)))")
        }
        let regs = try loadRegisters(sidecar: sidecar, overrides: overrides)
        let decoded = try RegisterDecoding(regs)
        var regions = extraRegions
        if !path.isEmpty {
            guard let base = regs.base else {
                throw ImageError("\(path): no base address: give --base or a base= line in \(path).regs")
            }
            regions.insert((base, path), at: 0)
        }
        return (try open(regions: regions, registers: decoded), decoded)
    }

    /// Reads the sidecar at `sidecar` (when it exists) and applies `overrides`.
    public static func loadRegisters(sidecar: String?, overrides: ImageRegisters) throws(ImageError) -> ImageRegisters {
        var regs = ImageRegisters()
        if let sidecar, let text = readSmallTextFile(sidecar) {
            regs = try ImageRegisters.parse(text, fileName: sidecar)
        }
        return regs.overridden(by: overrides)
    }
}

/// Collects non-empty leaf-position entries and table pages.
struct EntryCollector: Visitor {
    let format: DescriptorFormat
    var entries: [EntryRecord] = []
    var tables: [TableRecord]
    init(format: DescriptorFormat, tables: [TableRecord]) {
        self.format = format
        self.tables = tables
    }
    var flags: WalkFlags { [.leaf] }
    mutating func visit(_ ctx: inout VisitContext, _ visit: Visit) -> Int32 {
        if ctx.old != 0 { entries.append(EntryRecord(address: ctx.addr, level: ctx.level, descriptor: ctx.old)) }
        return 0
    }
    mutating func shouldDescend(_ ctx: VisitContext, into pa: UInt64) -> Bool {
        tables.append(TableRecord(physicalAddress: pa, level: ctx.level.next, address: ctx.addr))
        return true
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The text of a small file (at most 1 MiB), or nil when it cannot be read.
func readSmallTextFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while bytes.count <= 1 << 20 {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { if errno == EINTR { continue }; return nil }
        if n == 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}
