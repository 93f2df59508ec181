// The reference model for the model-based property tests (and the
// differential oracle of the operation-sequence fuzzer, which links this
// file through a symlink in FuzzTesting/Sources/FuzzOperations).
//
// It must use only the library's public API: a sparse tree of entries, with
// no descriptors in memory, no arena, no reference counts, and the kernel's
// semantics written out per operation from pgtable.c (not from the library).
import KVMPageTable

/// Architectural bit positions, written out independently of the library.
enum ModelBits {
    static let valid: UInt64 = 1 << 0
    static let type: UInt64 = 1 << 1
    static let s2MemAttrShift: UInt64 = 2
    static let s2R: UInt64 = 1 << 6
    static let s2W: UInt64 = 1 << 7
    static let shInnerShareable: UInt64 = 3 << 8
    static let af: UInt64 = 1 << 10
    static let s2XN: UInt64 = 3 << 53
    static let s2Perms: UInt64 = s2R | s2W | s2XN
    static let software: UInt64 = 0xf << 55
    static let s1XN: UInt64 = 1 << 54
    static let s1APShift: UInt64 = 6
    static let s1AttrIndexShift: UInt64 = 2
}

/// One table page of the model: its non-empty entries by index.
final class ModelTable {
    var entries: [Int: ModelEntry] = [:]
    /// References the hyp map WARN path took on this page without adding an
    /// entry (the page can then never be freed).
    var extraReferences = 0
}

/// A non-empty entry.
enum ModelEntry {
    case table(ModelTable)
    /// Output address and attribute bits (no address, valid or type bits).
    case leaf(pa: UInt64, attr: UInt64)
}

/// The kernel's page-table semantics over a sparse tree.
final class ReferenceModel {
    let configuration: ScriptConfiguration
    let geometry: TableGeometry
    let format: DescriptorFormat
    let granule: Granule
    let pageSize: UInt64
    let isStage2: Bool
    let fwb: Bool
    var roots: [ModelTable]
    /// The page budget (`limit_pages`), nil when unlimited.
    var budget: Int?
    /// Non-root table pages alive.
    var tablePages = 0
    /// Times the hyp map WARN path ran.
    var hypWarnings = 0

    static let eperm: Int32 = -1, e2big: Int32 = -7, eagain: Int32 = -11, enomem: Int32 = -12
    static let efault: Int32 = -14, einval: Int32 = -22, erange: Int32 = -34

    init(_ configuration: ScriptConfiguration) throws {
        self.configuration = configuration
        geometry = try TableGeometry(configuration)
        format = geometry.format
        granule = geometry.granule
        pageSize = granule.pageSize
        isStage2 = configuration.kind == .stage2
        fwb = configuration.fwb && isStage2
        roots = (0..<geometry.rootPages).map { _ in ModelTable() }
    }

    // MARK: Geometry

    var minimumBlockLevel: Level { granule == .size4K ? Level(1) : Level(2) }
    func size(_ level: Level) -> UInt64 { granule.size(at: level) }
    var entries: Int { granule.entriesPerTable }
    var limit: UInt64 { geometry.inputLimit }

    // MARK: Walking

    struct Ctx {
        let table: ModelTable
        let index: Int
        let level: Level
        let addr: UInt64
        let start: UInt64
        let end: UInt64
        var base: UInt64 { addr & ~(granuleSize &- 1) }
        let granuleSize: UInt64
    }

    enum VisitKind { case leaf, pre, post }

    struct Flags {
        var leaf = false, pre = false, post = false, fault = false
    }

    /// `kvm_pgtable_walk` over the model tree.
    func walk(_ addr: UInt64, size: UInt64, _ flags: Flags, _ visit: (Ctx, VisitKind) -> Int32) -> Int32 {
        let mask = pageSize - 1
        let start = addr & ~mask
        let end = (start &+ size &+ mask) & ~mask
        if start > limit || end > limit { return Self.erange }
        var cursor = start
        let topShift = granule.shift(at: Level(geometry.startLevel.rawValue - 1))
        var idx = topShift >= 64 ? 0 : Int((cursor & (limit &- 1)) >> UInt64(topShift))
        var r: Int32 = 0
        while cursor < end {
            guard idx < roots.count else { return Self.efault }
            r = walkTable(roots[idx], geometry.startLevel, &cursor, start, end, flags, visit)
            if r != 0 { break }
            idx += 1
        }
        return r
    }

    private func goesOn(_ flags: Flags, _ r: Int32) -> Bool {
        r == 0 || (r == Self.eagain && !flags.fault)
    }

    private func walkTable(_ table: ModelTable, _ level: Level, _ cursor: inout UInt64, _ start: UInt64,
                           _ end: UInt64, _ flags: Flags, _ visit: (Ctx, VisitKind) -> Int32) -> Int32 {
        let shift = UInt64(granule.shift(at: level))
        var i = Int((cursor >> shift) & UInt64(entries - 1))
        var r: Int32 = 0
        while i < entries {
            if cursor >= end { break }
            r = visitEntry(table, i, level, &cursor, start, end, flags, visit)
            if r != 0 { break }
            i += 1
        }
        return r
    }

    private func visitEntry(_ table: ModelTable, _ i: Int, _ level: Level, _ cursor: inout UInt64,
                            _ start: UInt64, _ end: UInt64, _ flags: Flags,
                            _ visit: (Ctx, VisitKind) -> Int32) -> Int32 {
        let sz = size(level)
        func isTable() -> Bool {
            if case .table = table.entries[i] { return true }
            return false
        }
        let ctx = Ctx(table: table, index: i, level: level, addr: cursor, start: start, end: end, granuleSize: sz)
        var r: Int32 = 0
        var tbl = isTable()
        if tbl && flags.pre { r = visit(ctx, .pre) }
        if !tbl && flags.leaf { r = visit(ctx, .leaf) }
        tbl = isTable()
        if !goesOn(flags, r) { return r }
        guard tbl, case let .table(child) = table.entries[i] else {
            cursor = (cursor & ~(sz &- 1)) &+ sz
            return 0
        }
        r = walkTable(child, level.next, &cursor, start, end, flags, visit)
        if !goesOn(flags, r) { return r }
        if flags.post { r = visit(ctx, .post) }
        return goesOn(flags, r) ? 0 : r
    }

    // MARK: Pages

    func takePage() -> Bool {
        if let b = budget {
            guard b > 0 else { return false }
            budget = b - 1
        }
        tablePages += 1
        return true
    }

    func tablesUnder(_ t: ModelTable) -> Int {
        var n = 0
        for case let .table(c) in t.entries.values { n += 1 + tablesUnder(c) }
        return n
    }

    func blockFits(_ ctx: Ctx, pa: UInt64) -> Bool {
        let sz = size(ctx.level)
        return ctx.level >= minimumBlockLevel && sz <= ctx.end &- ctx.addr
            && pa & (sz &- 1) == 0 && ctx.addr & (sz &- 1) == 0
    }

    // MARK: Attributes

    func s2MemAttr(_ kind: Int) -> UInt64 {
        // 0 normal, 1 device nGnRE, 2 normal non-cacheable
        switch kind {
        case 1: return 0x1
        case 2: return 0x5
        default: return fwb ? 0x6 : 0xf
        }
    }

    /// `stage2_set_prot_attr` (no FEAT_XNX: PX and UX go together).
    func stage2Attributes(_ prot: Prot) -> UInt64? {
        let device = prot.contains(.device), nc = prot.contains(.normalNC)
        let px = prot.contains(.px), ux = prot.contains(.ux)
        if device && nc { return nil }
        if (device || nc) && (px || ux) { return nil }
        if px != ux { return nil }
        var attr = s2MemAttr(device ? 1 : nc ? 2 : 0) << ModelBits.s2MemAttrShift
        attr |= (px ? 0b00 : 0b10) << 53
        if prot.contains(.read) { attr |= ModelBits.s2R }
        if prot.contains(.write) { attr |= ModelBits.s2W }
        if !format.lpa2 { attr |= ModelBits.shInnerShareable }
        attr |= ModelBits.af
        attr |= prot.rawValue & ModelBits.software
        return attr
    }

    /// `hyp_set_prot_attr`.
    func hypAttributes(_ prot: Prot) -> UInt64? {
        guard prot.contains(.read) else { return nil }
        let device = prot.contains(.device)
        let exec = prot.contains(.px) || prot.contains(.ux)
        var attr: UInt64 = (device ? 4 : 0) << ModelBits.s1AttrIndexShift
        if exec {
            if prot.contains(.write) || device { return nil }
        } else {
            attr |= ModelBits.s1XN
        }
        attr |= (prot.contains(.write) ? 1 : 3) << ModelBits.s1APShift
        if !format.lpa2 { attr |= ModelBits.shInnerShareable }
        attr |= ModelBits.af
        attr |= prot.rawValue & ModelBits.software
        return attr
    }

    func descriptor(pa: UInt64, attr: UInt64, level: Level) -> UInt64 {
        format.pte(fromPhysical: pa) | attr | ModelBits.valid | (level.isLast ? ModelBits.type : 0)
    }

    func descriptor(_ e: ModelEntry?, level: Level) -> UInt64 {
        switch e {
        case nil: return 0
        case .table: return ModelBits.valid | ModelBits.type
        case let .leaf(pa, attr)?: return descriptor(pa: pa, attr: attr, level: level)
        }
    }

    // MARK: Stage-2 operations

    /// `kvm_pgtable_stage2_map` (flags 0).
    func stage2Map(_ addr: UInt64, size: UInt64, phys: UInt64, prot: Prot) -> Int32 {
        guard let attr = stage2Attributes(prot) else { return Self.einval }
        let phys = phys & ~(pageSize - 1)
        return walk(addr, size: size, Flags(leaf: true, pre: true)) { ctx, kind in
            let pa = phys &+ (ctx.addr &- ctx.start)
            let fits = blockFits(ctx, pa: pa)
            switch kind {
            case .pre:
                guard fits, case let .table(old) = ctx.table.entries[ctx.index] else { return 0 }
                tablePages -= 1 + tablesUnder(old)
                ctx.table.entries[ctx.index] = .leaf(pa: pa, attr: attr)
                return 0
            case .leaf:
                if fits {
                    if case let .leaf(opa, oattr) = ctx.table.entries[ctx.index],
                       opa == pa, oattr & ~ModelBits.s2Perms == attr & ~ModelBits.s2Perms {
                        return Self.eagain  // same mapping, or only permissions differ
                    }
                    ctx.table.entries[ctx.index] = .leaf(pa: pa, attr: attr)
                    return 0
                }
                if ctx.level.isLast { return Self.einval }
                guard takePage() else { return Self.enomem }
                ctx.table.entries[ctx.index] = .table(ModelTable())
                return 0
            case .post:
                return Self.einval
            }
        }
    }

    /// `kvm_pgtable_stage2_unmap`.
    func stage2Unmap(_ addr: UInt64, size: UInt64) -> Int32 {
        walk(addr, size: size, Flags(leaf: true, post: true)) { ctx, kind in
            switch ctx.table.entries[ctx.index] {
            case nil: return 0
            case .leaf?:
                ctx.table.entries[ctx.index] = nil
            case let .table(child)?:
                if kind == .post, child.entries.isEmpty, child.extraReferences == 0 {
                    ctx.table.entries[ctx.index] = nil
                    tablePages -= 1
                }
            }
            return 0
        }
    }

    /// `kvm_phys_addr_ioremap` and the RFC's block variant.
    func ioremap(_ ipa: UInt64, size: UInt64, phys: UInt64, readOnly: Bool, blocks: Bool) -> Int32 {
        let prot: Prot = readOnly ? [.device, .read] : [.device, .read, .write]
        let total = size &+ (ipa & (pageSize - 1))
        let start = ipa & ~(pageSize - 1)
        let end = start &+ total
        var addr = start, pa = phys
        var r: Int32 = 0
        while addr < end {
            if let b = budget, b < geometry.levels - 1 { return Self.enomem }
            var chunk = pageSize
            if blocks {
                var level = geometry.startLevel
                while level <= Level(3) {
                    let sz = self.size(level)
                    if level >= minimumBlockLevel, sz <= end &- addr, addr & (sz &- 1) == 0, pa & (sz &- 1) == 0 {
                        chunk = sz
                        break
                    }
                    level = level.next
                }
            }
            r = stage2Map(addr, size: chunk, phys: pa, prot: prot)
            if r != 0 { break }
            pa &+= chunk
            addr &+= chunk
        }
        return r
    }

    /// `stage2_update_leaf_attrs`.
    func updateLeaves(_ addr: UInt64, size: UInt64, set: UInt64, clear: UInt64, fault: Bool) -> Int32 {
        walk(addr, size: size, Flags(leaf: true, fault: fault)) { ctx, _ in
            guard case let .leaf(pa, attr) = ctx.table.entries[ctx.index] else { return Self.eagain }
            ctx.table.entries[ctx.index] = .leaf(pa: pa, attr: (attr & ~clear) | set)
            return 0
        }
    }

    func wrprotect(_ addr: UInt64, size: UInt64) -> Int32 {
        updateLeaves(addr, size: size, set: 0, clear: ModelBits.s2W, fault: false)
    }

    func mkyoung(_ addr: UInt64) {
        _ = updateLeaves(addr, size: 1, set: ModelBits.af, clear: 0, fault: true)
    }

    func relaxPerms(_ addr: UInt64, prot: Prot) -> Int32 {
        if prot.rawValue & ModelBits.software != 0 { return Self.einval }
        let px = prot.contains(.px), ux = prot.contains(.ux)
        if px != ux { return Self.einval }
        let xn: UInt64 = (px ? 0b00 : 0b10) << 53
        var set = xn
        if prot.contains(.read) { set |= ModelBits.s2R }
        if prot.contains(.write) { set |= ModelBits.s2W }
        return updateLeaves(addr, size: 1, set: set, clear: ~xn & ModelBits.s2XN, fault: true)
    }

    func testClearYoung(_ addr: UInt64, size: UInt64, mkold: Bool) -> Bool {
        var young = false
        _ = walk(addr, size: size, Flags(leaf: true)) { ctx, _ in
            guard case let .leaf(pa, attr) = ctx.table.entries[ctx.index], attr & ModelBits.af != 0 else { return 0 }
            young = true
            if mkold { ctx.table.entries[ctx.index] = .leaf(pa: pa, attr: attr & ~ModelBits.af) }
            return 0
        }
        return young
    }

    func flush(_ addr: UInt64, size: UInt64) -> Int32 {
        if fwb { return 0 }
        return walk(addr, size: size, Flags(leaf: true)) { _, _ in 0 }
    }

    /// `kvm_pgtable_stage2_split`: every valid block in range becomes a table
    /// mapping the same memory with the same permissions, Normal memory, AF set.
    func split(_ addr: UInt64, size: UInt64) -> Int32 {
        walk(addr, size: size, Flags(leaf: true)) { ctx, _ in
            guard !ctx.level.isLast, case let .leaf(pa, attr) = ctx.table.entries[ctx.index] else { return 0 }
            var needed: Int
            switch ctx.level.rawValue {
            case 1: needed = entries + 1
            case 2: needed = 1
            default: return Self.einval
            }
            let available = budget ?? Int.max
            let full = available >= needed
            if !full { needed = 1 }
            if available < needed { return Self.enomem }
            let blockSize = self.size(ctx.level)
            if pa & (blockSize - 1) != 0 { return Self.einval }
            // kvm_pgtable_stage2_pte_prot() then stage2_set_prot_attr(): the
            // memory type is lost; XN values other than 00/10 are refused.
            let xn = (attr & ModelBits.s2XN) >> 53
            if xn == 0b01 || xn == 0b11 { return Self.einval }
            var newAttr = s2MemAttr(0) << ModelBits.s2MemAttrShift | (attr & (ModelBits.s2Perms | ModelBits.software))
            if !format.lpa2 { newAttr |= ModelBits.shInnerShareable }
            newAttr |= ModelBits.af
            if let b = budget { budget = b - needed }
            tablePages += needed
            ctx.table.entries[ctx.index] = .table(makeSplitTable(pa: pa, attr: newAttr, level: ctx.level.next, full: full))
            return 0
        }
    }

    private func makeSplitTable(pa: UInt64, attr: UInt64, level: Level, full: Bool) -> ModelTable {
        let t = ModelTable()
        let sz = size(level)
        for i in 0..<entries {
            let p = pa &+ UInt64(i) &* sz
            if full && !level.isLast {
                t.entries[i] = .table(makeSplitTable(pa: p, attr: attr, level: level.next, full: true))
            } else {
                t.entries[i] = .leaf(pa: p, attr: attr)
            }
        }
        return t
    }

    // MARK: Hyp operations

    /// `kvm_pgtable_hyp_map`.
    func hypMap(_ addr: UInt64, size: UInt64, phys: UInt64, prot: Prot) -> Int32 {
        guard let attr = hypAttributes(prot) else { return Self.einval }
        let phys = phys & ~(pageSize - 1)
        return walk(addr, size: size, Flags(leaf: true)) { ctx, _ in
            let pa = phys &+ (ctx.addr &- ctx.start)
            let old = ctx.table.entries[ctx.index]
            var warned = false
            if blockFits(ctx, pa: pa) {
                switch old {
                case nil:
                    ctx.table.entries[ctx.index] = .leaf(pa: pa, attr: attr)
                    return 0
                case let .leaf(opa, oattr)?:
                    if opa == pa, oattr & ~ModelBits.software == attr & ~ModelBits.software {
                        ctx.table.entries[ctx.index] = .leaf(pa: pa, attr: attr)
                        return 0
                    }
                    warned = true  // WARN_ON: a different valid leaf
                case .table?:
                    return Self.einval  // not visited as a leaf
                }
            }
            if ctx.level.isLast { return Self.einval }
            guard takePage() else { return Self.enomem }
            if case .leaf? = old {
                // The table pointer replaces a counted entry, yet takes a
                // reference of its own (both the WARN path and the
                // "page inside a block" path land here).
                ctx.table.extraReferences += 1
                hypWarnings += 1
            }
            _ = warned
            ctx.table.entries[ctx.index] = .table(ModelTable())
            return 0
        }
    }

    /// `kvm_pgtable_hyp_unmap`: bytes unmapped.
    func hypUnmap(_ addr: UInt64, size: UInt64) -> UInt64 {
        var unmapped: UInt64 = 0
        _ = walk(addr, size: size, Flags(leaf: true, post: true)) { ctx, kind in
            switch ctx.table.entries[ctx.index] {
            case nil: return Self.einval
            case .leaf?:
                if ctx.end &- ctx.addr < self.size(ctx.level) { return Self.einval }
                ctx.table.entries[ctx.index] = nil
                unmapped &+= self.size(ctx.level)
            case let .table(child)?:
                if child.entries.isEmpty, child.extraReferences == 0 {
                    ctx.table.entries[ctx.index] = nil
                    tablePages -= 1
                }
            }
            return 0
        }
        return unmapped
    }

    // MARK: Queries

    /// `kvm_pgtable_get_leaf`: level and descriptor of the last leaf visit.
    func getLeaf(_ addr: UInt64) -> (code: Int32, level: Level, pte: UInt64) {
        var level = Level(0), pte: UInt64 = 0
        let r = walk(addr & ~(pageSize - 1), size: pageSize, Flags(leaf: true)) { ctx, _ in
            level = ctx.level
            pte = descriptor(ctx.table.entries[ctx.index], level: ctx.level)
            return 0
        }
        return (r, level, pte)
    }

    /// The transcript's result field for an operation; nil for views.
    func perform(_ op: Operation) -> String? {
        func code(_ r: Int32) -> String { r == 0 ? "0" : KernelError(code: r)!.description }
        if !isStage2 {
            switch op {
            case let .map(a, s, p, prot): return code(hypMap(a, size: s, phys: p, prot: prot))
            case let .unmap(a, s): return Hex.short(hypUnmap(a, size: s))
            case .getLeaf, .limitPages: break
            case .dump, .summary, .ptdump: return nil
            default: return code(Self.einval)
            }
        }
        switch op {
        case let .map(a, s, p, prot): return code(stage2Map(a, size: s, phys: p, prot: prot))
        case let .unmap(a, s): return code(stage2Unmap(a, size: s))
        case let .ioremap(a, s, p, ro): return code(ioremap(a, size: s, phys: p, readOnly: ro, blocks: false))
        case let .ioremapBlock(a, s, p, ro): return code(ioremap(a, size: s, phys: p, readOnly: ro, blocks: true))
        case let .wrprotect(a, s): return code(wrprotect(a, size: s))
        case let .mkyoung(a):
            mkyoung(a)
            return "0"
        case let .testClearYoung(a, s, mkold): return testClearYoung(a, size: s, mkold: mkold) ? "1" : "0"
        case let .relaxPerms(a, prot): return code(relaxPerms(a, prot: prot))
        case let .flush(a, s): return code(flush(a, size: s))
        case let .split(a, s): return code(split(a, size: s))
        case let .getLeaf(a):
            let (r, level, pte) = getLeaf(a)
            return r == 0 ? "0 level=\(level.rawValue) pte=\(Hex.padded(pte))" : code(r)
        case let .limitPages(n):
            budget = Int(clamping: n)
            return "0"
        case .dump, .summary, .ptdump: return nil
        }
    }

    // MARK: Views

    /// Entries in the tree (table entries included).
    func entryCount(limit: Int = Int.max) -> Int {
        var n = 0
        func visit(_ t: ModelTable) {
            for e in t.entries.values {
                n += 1
                if n >= limit { return }
                if case let .table(c) = e { visit(c) }
            }
        }
        for r in roots where n < limit { visit(r) }
        return n
    }

    /// FORMAT.md's canonical dump lines (without `dump`/`end`).
    func canonicalDump() -> String {
        var out = ""
        var next = UInt64(roots.count)
        let rootSpan = size(geometry.startLevel) &* UInt64(entries)
        func line(_ level: Level, _ addr: UInt64, _ pte: UInt64) {
            out += "L\(level.rawValue) \(Hex.padded(addr)) \(Hex.padded(pte))\n"
        }
        func dumpTable(_ t: ModelTable, _ level: Level, _ base: UInt64) {
            for i in t.entries.keys.sorted() {
                let addr = base &+ UInt64(i) &* size(level)
                switch t.entries[i]! {
                case let .table(child):
                    let n = next
                    next += 1
                    line(level, addr, format.pte(fromPhysical: n &* pageSize) | ModelBits.valid | ModelBits.type)
                    dumpTable(child, level.next, addr)
                case let .leaf(pa, attr):
                    line(level, addr, descriptor(pa: pa, attr: attr, level: level))
                }
            }
        }
        for (i, r) in roots.enumerated() { dumpTable(r, geometry.startLevel, UInt64(i) &* rootSpan) }
        return out
    }

    /// A leaf picked by a random descent from a random non-empty root page.
    func randomLeaf(_ rng: inout SplitMix64) -> (level: Level, addr: UInt64, size: UInt64)? {
        let rootSpan = size(geometry.startLevel) &* UInt64(entries)
        let candidates = roots.indices.filter { !roots[$0].entries.isEmpty }
        guard !candidates.isEmpty else { return nil }
        let r = candidates[Int(rng.next() % UInt64(candidates.count))]
        var table = roots[r], level = geometry.startLevel, base = UInt64(r) &* rootSpan
        while true {
            let keys = Array(table.entries.keys)
            guard !keys.isEmpty else { return nil }
            let i = keys[Int(rng.next() % UInt64(keys.count))]
            let addr = base &+ UInt64(i) &* size(level)
            switch table.entries[i]! {
            case let .table(c):
                table = c
                level = level.next
                base = addr
            case .leaf:
                return (level, addr, size(level))
            }
        }
    }

    /// Every leaf as (level, first input address, size), in address order,
    /// up to `limit`.
    func leaves(limit: Int = Int.max) -> [(level: Level, addr: UInt64, size: UInt64)] {
        var out: [(Level, UInt64, UInt64)] = []
        let rootSpan = size(geometry.startLevel) &* UInt64(entries)
        func visit(_ t: ModelTable, _ level: Level, _ base: UInt64) {
            for i in t.entries.keys.sorted() {
                if out.count >= limit { return }
                let addr = base &+ UInt64(i) &* size(level)
                switch t.entries[i]! {
                case let .table(c): visit(c, level.next, addr)
                case .leaf: out.append((level, addr, size(level)))
                }
            }
        }
        for (i, r) in roots.enumerated() where out.count < limit { visit(r, geometry.startLevel, UInt64(i) &* rootSpan) }
        return out
    }
}
