import CKVMPageTable

/// One lint finding.
public struct LintFinding: Hashable, Sendable, CustomStringConvertible {
    /// How bad it is.
    public enum Severity: String, Hashable, Sendable, Comparable {
        /// The MMU faults or misbehaves, or the image is malformed.
        case error
        /// Legal but dangerous.
        case warning
        /// Performance advice.
        case advice

        /// Errors sort first, advice last.
        public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }

        private var rank: Int {
            switch self {
            case .error: 0
            case .warning: 1
            case .advice: 2
            }
        }
    }

    /// The rules, by name.
    public enum Rule: String, Hashable, Sendable, CaseIterable {
        /// A block at a level the granule does not allow (or the block
        /// encoding at level 3).
        case blockLevel = "block-level"
        /// A table descriptor (no attributes) at the last level.
        case tableAtLastLevel = "table-at-last-level"
        /// RES0 bits set.
        case res0 = "res0"
        /// An output address or table pointer beyond PS.
        case beyondPS = "oa-beyond-ps"
        /// A block output address not aligned to the block size.
        case misaligned = "misaligned"
        /// A table pointer outside the image.
        case tableOutside = "table-outside"
        /// A table reached twice (a loop or a shared sub-table).
        case tableReachedTwice = "table-reached-twice"
        /// A reserved MemAttr encoding.
        case memAttrReserved = "memattr-reserved"
        /// Writable and executable together.
        case writeExecute = "write-exec"
        /// A table that could be one block.
        case couldBeBlock = "could-be-block"

        /// The rule's severity.
        public var severity: Severity {
            switch self {
            case .writeExecute: .warning
            case .couldBeBlock: .advice
            default: .error
            }
        }
    }

    /// The rule.
    public let rule: Rule
    /// The level of the entry.
    public let level: Level
    /// The first input address it covers.
    public let address: UInt64
    /// What is wrong.
    public let message: String
    /// TLBIs a teardown would save (`could-be-block`).
    public var tlbisSaved: Int = 0

    /// `error L2 0x… rule: message`.
    public var description: String {
        "\(rule.severity.rawValue) \(level) \(Hex.padded(address)) \(rule.rawValue): \(message)"
    }
}

/// The result of a lint run.
public struct LintReport: Sendable {
    /// The findings kept (at most ``LintReport/limit``), in address order.
    public var findings: [LintFinding] = []
    /// Findings per rule, all of them counted.
    public var counts: [LintFinding.Rule: Int] = [:]
    /// TLBIs a teardown would save if every `could-be-block` table were a block.
    public var tlbisSaved = 0
    /// Findings kept.
    public static let limit = 10_000

    /// Every finding counted.
    public var total: Int { counts.values.reduce(0, +) }
    /// Whether nothing was found.
    public var isClean: Bool { total == 0 }

    mutating func add(_ f: LintFinding) {
        counts[f.rule, default: 0] += 1
        tlbisSaved += f.tlbisSaved
        if findings.count < Self.limit { findings.append(f) }
    }

    /// One line per finding, then a summary line.
    public var text: String {
        var s = findings.map { $0.description + "\n" }.joined()
        if findings.count < total { s += "… \(total - findings.count) more findings not shown\n" }
        if isClean {
            s += "clean: no findings\n"
        } else {
            let parts = LintFinding.Rule.allCases.compactMap { r in counts[r].map { "\(r.rawValue)=\($0)" } }
            s += "\(total) finding\(total == 1 ? "" : "s"): \(parts.joined(separator: " "))"
            if tlbisSaved > 0 { s += "; blocks would save \(tlbisSaved) TLBIs on teardown" }
            s += "\n"
        }
        return s
    }
}

extension TableInspector {
    /// Checks every rule of ``LintFinding/Rule`` over the whole table.
    public func lint() -> LintReport {
        var v = LintVisitor(inspector: self)
        var g = GuardedVisitor(v, rootPages: rootPages, isReadable: readable, describeMiss: describeMiss)
        g.report.code = walker.walk(0, size: geometry.inputLimit, visitor: &g)
        v = g.inner
        var all = v.findings
        for p in g.report.problems {
            let rule: LintFinding.Rule = p.kind == .outside ? .tableOutside : .tableReachedTwice
            let msg = p.kind == .outside
                ? "table pointer \(Hex.short(p.physicalAddress)) leads outside the image: \(p.detail)"
                : "table \(Hex.short(p.physicalAddress)) is reached a second time (\(rootPages.contains(p.physicalAddress) ? "it is a root page: a loop" : "a loop or a shared sub-table"))"
            all.append(LintFinding(rule: rule, level: p.level, address: p.address, message: msg))
        }
        all.sort { ($0.address, $0.level.rawValue) < ($1.address, $1.level.rawValue) }
        var report = LintReport()
        for f in all { report.add(f) }
        // Counts beyond the kept findings.
        for (rule, n) in v.dropped { report.counts[rule, default: 0] += n }
        for (kind, n) in g.report.counts {
            let kept = g.report.problems.filter { $0.kind == kind }.count
            let rule: LintFinding.Rule = kind == .outside ? .tableOutside : .tableReachedTwice
            if n > kept { report.counts[rule, default: 0] += n - kept }
        }
        return report
    }
}

struct LintVisitor<M: TableMemory>: Visitor {
    let inspector: TableInspector<M>
    let format: DescriptorFormat
    let granule: Granule
    let decoder: AttributeDecoder
    let fiftyTwo: Bool
    var findings: [LintFinding] = []
    var dropped: [LintFinding.Rule: Int] = [:]
    var tablePages: Set<UInt64> = []

    struct Group {
        var count = 0
        var mergeable = true
        var first: UInt64 = 0
        var firstPA: UInt64 = 0
    }
    var groups = [Group](repeating: Group(), count: 6)

    init(inspector: TableInspector<M>) {
        self.inspector = inspector
        self.format = inspector.format
        self.granule = inspector.granule
        self.decoder = inspector.attributeDecoder
        self.fiftyTwo = inspector.format.outputAddressBits == 52
        self.tablePages = Set(inspector.rootPages)
    }

    var flags: WalkFlags { [.tablePre, .leaf, .tablePost] }

    mutating func add(_ rule: LintFinding.Rule, _ ctx: VisitContext, _ msg: String, saved: Int = 0) {
        guard findings.count < LintReport.limit else {
            dropped[rule, default: 0] += 1
            return
        }
        findings.append(LintFinding(rule: rule, level: ctx.level, address: ctx.addr, message: msg, tlbisSaved: saved))
    }

    /// Bits of the OA field [49:12] that the format does not use.
    var addressRes0: UInt64 { 0x0003_ffff_ffff_f000 & ~format.addressMask }

    func slot(_ level: Level) -> Int { Int(level.rawValue) + 1 }

    mutating func checkPA(_ ctx: VisitContext, _ pa: UInt64, what: String) {
        let bits = inspector.outputBits
        if bits < 64, pa >> UInt64(bits) != 0 {
            add(.beyondPS, ctx, "\(what) \(Hex.short(pa)) is beyond the \(bits)-bit output size (PS): an address size fault")
        }
    }

    mutating func visit(_ ctx: inout VisitContext, _ visit: Visit) -> Int32 {
        let d = ctx.old
        let level = ctx.level
        switch visit {
        case .tablePre:
            let pa = format.physical(fromPTE: d)
            var res0 = d & addressRes0
            if inspector.kind == .stage2 { res0 |= d & 0xf800_0000_0000_0000 }  // no table attributes at stage 2
            if res0 != 0 { add(.res0, ctx, "table descriptor \(Hex.padded(d)) has RES0 bits \(Hex.short(res0)) set") }
            checkPA(ctx, pa, what: "next-level table address")
            if level.rawValue >= -1 && level.rawValue < 3 {
                groups[slot(level)].mergeable = false
                groups[slot(level)].count += 1
                groups[slot(level.next)] = Group()
            }
            tablePages.insert(pa)
        case .tablePost:
            evaluateGroup(ctx)
        case .leaf:
            leaf(ctx)
        }
        return 0
    }

    mutating func leaf(_ ctx: VisitContext) {
        let d = ctx.old
        let level = ctx.level
        var g = groups[slot(level)]
        defer { groups[slot(level)] = g }
        guard d & KVMPT_PTE_VALID != 0 else {
            g.count += 1
            g.mergeable = false
            return
        }
        let pa = format.physical(fromPTE: d)
        let size = granule.size(at: level)
        // Shape.
        if level.isLast && d & KVMPT_PTE_TYPE == 0 {
            add(.blockLevel, ctx, "block encoding (bits[1:0]=0b01) at level 3 is reserved: a translation fault")
        } else if !level.isLast && !Architecture.blockAllowed(granule: granule, level: level, fiftyTwoBit: fiftyTwo) {
            add(.blockLevel, ctx, "block descriptor at level \(level.rawValue): the \(granule) granule allows blocks only at level\(granule == .size4K ? (fiftyTwo ? "s 0-2" : "s 1-2") : (fiftyTwo ? "s 1-2" : " 2")); a translation fault")
        }
        let attrBits = d & (KVMPT_PTE_LEAF_ATTR_LO | KVMPT_PTE_LEAF_ATTR_HI) & ~format.addressMask
        if level.isLast && d & KVMPT_PTE_TYPE != 0 && attrBits == 0 {
            let onTable = tablePages.contains(pa) || inspector.walker.memory.table(at: pa) != nil
            add(.tableAtLastLevel, ctx, "table descriptor \(Hex.padded(d)) at level 3, the last level: the MMU reads it as a page with no permissions and AF=0\(onTable ? ", mapping \(Hex.short(pa)), which is table memory in this image" : "")")
        }
        // RES0.
        var res0 = d & addressRes0
        if inspector.kind == .stage2 { res0 |= d & ((1 << 11) | (1 << 50)) }
        if res0 != 0 { add(.res0, ctx, "descriptor \(Hex.padded(d)) has RES0 bits \(Hex.short(res0)) set") }
        checkPA(ctx, pa, what: "output address")
        if pa & (size &- 1) != 0 {
            add(.misaligned, ctx, "output address \(Hex.short(pa)) is not aligned to the \(RegisterDecoding.size(size)) block size")
        }
        if decoder.memoryType(d).reserved {
            add(.memAttrReserved, ctx, "\(inspector.kind == .stage2 ? "MemAttr=\(Hex.short(Descriptor(d).s2MemAttr))" : "memory type") is a reserved encoding: \(decoder.memoryType(d).meaning)")
        }
        if decoder.isWritableAndExecutable(d) {
            add(.writeExecute, ctx, "writable and executable (\(decoder.permissions(d)))")
        }
        // Grouping for block advice.
        if g.count == 0 {
            g.first = d
            g.firstPA = pa
        } else if g.mergeable {
            g.mergeable = (d ^ g.first) & ~format.addressMask == 0 && pa == g.firstPA &+ UInt64(g.count) &* size
        }
        g.count += 1
    }

    mutating func evaluateGroup(_ ctx: VisitContext) {
        let level = ctx.level
        guard level.rawValue < 3 else { return }
        let g = groups[slot(level.next)]
        let n = granule.entriesPerTable
        guard g.count == n, g.mergeable else { return }
        guard granule.supportsLeaf(at: level),
              Architecture.blockAllowed(granule: granule, level: level, fiftyTwoBit: fiftyTwo) else { return }
        let big = granule.size(at: level)
        guard g.firstPA & (big &- 1) == 0 else { return }
        let small = granule.size(at: level.next)
        let what = level.next.isLast ? "\(RegisterDecoding.size(small)) pages" : "\(RegisterDecoding.size(small)) blocks"
        // Teardown (kvm_pgtable_stage2_unmap): one TLBI per leaf and one for
        // the table entry, against one for a block.
        let saved = n
        add(.couldBeBlock, ctx, "\(n) \(what) at \(Hex.short(ctx.addr)) (PA \(Hex.short(g.firstPA))) could be one \(RegisterDecoding.size(big)) block: a teardown would issue 1 TLBI instead of \(n + 1) (\(saved) saved) and free one table page fewer", saved: saved)
    }
}
