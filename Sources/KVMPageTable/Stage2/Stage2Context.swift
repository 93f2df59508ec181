import CKVMPageTable

/// What every stage-2 visitor needs: the arena (the kernel's `mm_ops`), the
/// format, the features, and the primitives the kernel's visitors share
/// (break-before-make, attribute encoding, freeing unlinked tables).
@usableFromInline
struct Stage2Context {
    @usableFromInline let arena: ArenaView
    @usableFromInline let geometry: TableGeometry
    @usableFromInline let root: UInt64
    @usableFromInline let format: DescriptorFormat
    @usableFromInline let granule: Granule
    @usableFromInline let math: LevelMath
    @usableFromInline let fwb: Bool
    @usableFromInline let tlbiRangeSupported: Bool
    @usableFromInline let xnx: Bool
    /// `KVM_S2_MEMATTR(pgt, NORMAL)`: what "cacheable" compares against.
    @usableFromInline let normalMemAttr: UInt64

    @usableFromInline
    init(arena: ArenaView, geometry: TableGeometry, root: UInt64, features: Stage2Features) {
        self.arena = arena
        self.geometry = geometry
        self.root = root
        self.format = geometry.format
        self.granule = geometry.granule
        self.math = LevelMath(geometry.granule)
        self.fwb = features.contains(.fwb)
        self.tlbiRangeSupported = features.contains(.tlbiRange)
        self.xnx = features.contains(.xnx)
        self.normalMemAttr = kvmpt_s2_memattr(KVMPT_MT_S2_NORMAL, KVMPT_MT_S2_FWB_NORMAL, fwb)
    }

    /// A walker over the table (built per operation; visitors don't carry one).
    @inlinable
    var walker: Walker<ArenaView> { Walker(memory: arena, geometry: geometry, rootPhysicalAddress: root) }

    // MARK: Encoding

    /// `stage2_set_xn_attr`: the XN field for the execute bits of `prot`.
    @inlinable
    func xnField(_ prot: Prot) -> UInt64? {
        let px = prot.contains(.px), ux = prot.contains(.ux)
        if !xnx && px != ux { return nil }
        let xn: UInt64 = px ? (ux ? 0b00 : 0b11) : (ux ? 0b01 : 0b10)
        return xn << 53
    }

    /// `stage2_set_prot_attr`: the attribute bits for `prot`, or nil where
    /// the kernel returns `-EINVAL`.
    @inlinable
    func attributes(_ prot: Prot) -> UInt64? {
        var attr: UInt64
        switch (prot.contains(.device), prot.contains(.normalNC)) {
        case (true, true): return nil
        case (true, false):
            if !prot.intersection(.execute).isEmpty { return nil }
            attr = kvmpt_s2_memattr(KVMPT_MT_S2_DEVICE_nGnRE, KVMPT_MT_S2_FWB_DEVICE_nGnRE, fwb)
        case (false, true):
            if !prot.intersection(.execute).isEmpty { return nil }
            attr = kvmpt_s2_memattr(KVMPT_MT_S2_NORMAL_NC, KVMPT_MT_S2_FWB_NORMAL_NC, fwb)
        case (false, false):
            attr = normalMemAttr
        }
        guard let xn = xnField(prot) else { return nil }
        attr |= xn
        if prot.contains(.read) { attr |= KVMPT_S2_S2AP_R }
        if prot.contains(.write) { attr |= KVMPT_S2_S2AP_W }
        if !format.lpa2 { attr |= KVMPT_S2_SH_IS << 8 }
        attr |= KVMPT_S2_AF
        attr |= prot.rawValue & KVMPT_PTE_LEAF_ATTR_HI_SW
        return attr
    }

    /// `kvm_pgtable_stage2_pte_prot`: the prot a leaf was made with, as far
    /// as the descriptor tells (memory type is not recovered).
    @inlinable
    static func prot(of pte: UInt64) -> Prot {
        var prot = Prot(rawValue: pte & KVMPT_PTE_LEAF_ATTR_HI_SW)
        guard pte & KVMPT_PTE_VALID != 0 else { return prot }
        if pte & KVMPT_S2_S2AP_R != 0 { prot.insert(.read) }
        if pte & KVMPT_S2_S2AP_W != 0 { prot.insert(.write) }
        switch (pte & KVMPT_S2_XN) >> 53 {
        case 0b00: prot.formUnion(.execute)
        case 0b01: prot.insert(.ux)
        case 0b11: prot.insert(.px)
        default: break
        }
        return prot
    }

    /// `kvm_init_valid_leaf_pte`.
    @inlinable @inline(__always)
    func leafPTE(_ pa: UInt64, _ attr: UInt64, _ level: Level) -> UInt64 {
        format.leafPTE(pa, attributes: attr, level: level)
    }

    /// `kvm_init_table_pte`.
    @inlinable @inline(__always)
    func tablePTE(_ pa: UInt64) -> UInt64 { format.tablePTE(pa) }

    /// `kvm_block_mapping_supported` at the visited entry.
    @inlinable @inline(__always)
    func blockFits(_ ctx: VisitContext, phys: UInt64) -> Bool {
        math.leafFits(ctx.level, addr: ctx.addr, end: ctx.end, phys: phys)
    }

    // MARK: Predicates

    /// `stage2_pte_cacheable`.
    @inlinable @inline(__always)
    func isCacheable(_ pte: UInt64) -> Bool {
        pte & KVMPT_PTE_VALID != 0 && pte & KVMPT_S2_MEMATTR == normalMemAttr
    }

    /// `stage2_pte_executable`.
    @inlinable @inline(__always)
    static func isExecutable(_ pte: UInt64) -> Bool {
        pte & KVMPT_PTE_VALID != 0 && pte & KVMPT_S2_XN == 0
    }

    /// `stage2_pte_is_counted`: every non-zero entry holds a reference.
    @inlinable @inline(__always)
    static func isCounted(_ pte: UInt64) -> Bool { pte != 0 }

    /// `stage2_pte_is_locked`.
    @inlinable @inline(__always)
    static func isLocked(_ pte: UInt64) -> Bool {
        pte & KVMPT_PTE_VALID == 0 && pte & KVMPT_INVALID_PTE_LOCKED != 0
    }

    // MARK: Break-before-make

    /// `stage2_try_break_pte`: lock the entry, invalidate what it held,
    /// drop its reference. False where the kernel would retry.
    @inlinable @inline(__always)
    func tryBreak(_ ctx: VisitContext, _ m: inout Maintenance) -> Bool {
        if Self.isLocked(ctx.old) { return false }
        if ctx.isShared {
            guard ctx.ptep.pointee == ctx.old else { return false }
        }
        ctx.ptep.pointee = KVMPT_INVALID_PTE_LOCKED
        if !ctx.flags.contains(.skipBBMTLBI) {
            if Descriptor(ctx.old).isTable(at: ctx.level) {
                m.flushRange(size: math.size(ctx.level), pageShift: UInt32(math.pageShift),
                             rangeSupported: tlbiRangeSupported)
            } else if ctx.old & KVMPT_PTE_VALID != 0 {
                m.tlbiIPA += 1
            }
        }
        if Self.isCounted(ctx.old) { arena.putPage(holding: ctx.ptep) }
        return true
    }

    /// `stage2_make_pte`: install `new` over a locked entry.
    @inlinable @inline(__always)
    func make(_ ctx: VisitContext, _ new: UInt64) {
        assert(Self.isLocked(ctx.ptep.pointee), "make over an unlocked entry")
        if Self.isCounted(new) { arena.getPage(holding: ctx.ptep) }
        ctx.ptep.pointee = new
    }

    /// `stage2_try_set_pte`: a plain store, or compare-and-swap when shared.
    @inlinable @inline(__always)
    func trySet(_ ctx: VisitContext, _ new: UInt64) -> Bool {
        if ctx.isShared, ctx.ptep.pointee != ctx.old { return false }
        ctx.ptep.pointee = new
        return true
    }

    // MARK: Freeing

    /// `kvm_pgtable_stage2_free_unlinked`: drop every reference held in the
    /// detached table at `table` (an entry of `level` pointed to it) and free
    /// it and everything below it.
    @inlinable
    func freeUnlinked(_ table: UnsafeMutablePointer<UInt64>, level: Level) {
        var v = FreeVisitor(arena: arena, format: format)
        _ = walker.walkUnlinked(table, level: level.next, size: math.size(level), visitor: &v)
        assert(arena.pageCount(holding: table) == 1, "unlinked table still referenced")
        arena.putPage(holding: table)
    }
}

/// `stage2_free_walker`.
@usableFromInline
struct FreeVisitor: Visitor {
    @usableFromInline let arena: ArenaView
    @usableFromInline let format: DescriptorFormat
    @usableFromInline init(arena: ArenaView, format: DescriptorFormat) {
        self.arena = arena
        self.format = format
    }
    @inlinable var flags: WalkFlags { [.leaf, .tablePost] }

    @inlinable
    mutating func visit(_ ctx: inout VisitContext, _ visit: Visit) -> Int32 {
        guard Stage2Context.isCounted(ctx.old) else { return 0 }
        switch visit {
        case .leaf:
            arena.putPage(holding: ctx.ptep)
            return 0
        case .tablePost:
            let child = arena.pointer(format.physical(fromPTE: ctx.old))
            if arena.pageCount(holding: child) != 1 { return 0 }
            arena.putPage(holding: ctx.ptep)
            arena.putPage(holding: child)
            ctx.ptep.pointee = 0
            return 0
        case .tablePre:
            return KernelError.einval.code
        }
    }
}
