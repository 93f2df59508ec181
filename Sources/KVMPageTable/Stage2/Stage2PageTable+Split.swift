import CKVMPageTable

extension Stage2PageTable {
    /// `kvm_pgtable_stage2_split`: replace every valid block in range with a
    /// table mapping the same memory, taking table pages from the budget
    /// (the split memcache).
    ///
    /// With enough pages for a whole tree a block becomes pages at once;
    /// with fewer, one level at a time (the walk then descends into the new
    /// table and splits its blocks in turn), until `-ENOMEM`. The new leaves
    /// carry the permissions the block had; like the kernel, the memory type
    /// is not carried over.
    @inlinable
    public func split(_ addr: UInt64, size: UInt64) throws(KernelError) {
        let code = recording { m in
            var v = Stage2SplitVisitor(s2: contextPointer)
            let r = hot.pointee.walker.walk(addr, size: size, visitor: &v)
            m += v.maintenance
            return r
        }
        try Self.check(code)
    }
}

/// `stage2_split_walker`.
@usableFromInline
struct Stage2SplitVisitor: Visitor {
    @usableFromInline let s2: UnsafePointer<Stage2Context>
    @usableFromInline var maintenance = Maintenance()
    @inlinable init(s2: UnsafePointer<Stage2Context>) { self.s2 = s2 }
    @inlinable var flags: WalkFlags { .leaf }

    /// `stage2_block_get_nr_page_tables`: pages for a full tree under a
    /// block at `level`.
    @inlinable
    func pagesForFullSplit(_ level: Level) -> Int? {
        switch level.rawValue {
        case 1: s2.pointee.granule.entriesPerTable + 1
        case 2: 1
        case 3: 0
        default: nil
        }
    }

    @inlinable
    mutating func visit(_ ctx: inout VisitContext, _ visit: Visit) -> Int32 {
        let level = ctx.level, pte = ctx.old
        if level.isLast || pte & KVMPT_PTE_VALID == 0 { return 0 }
        guard var needed = pagesForFullSplit(level) else { return KernelError.einval.code }
        let available = s2.pointee.arena.budget
        let forcePTE: Bool
        if available >= needed {
            forcePTE = true
        } else {
            forcePTE = false
            needed = 1
        }
        if available < needed { return KernelError.enomem.code }
        let phys = s2.pointee.format.physical(fromPTE: pte)
        let prot = Stage2Context.prot(of: pte)
        let (r, child) = createUnlinked(phys: phys, level: level, prot: prot, forcePTE: forcePTE)
        guard let child else { return r }
        guard s2.pointee.tryBreak(ctx, &maintenance) else {
            s2.pointee.freeUnlinked(child, level: level)
            return KernelError.eagain.code
        }
        s2.pointee.make(ctx, s2.pointee.tablePTE(s2.pointee.arena.physicalAddress(of: child)))
        return 0
    }

    /// `kvm_pgtable_stage2_create_unlinked`: a detached table mapping the
    /// `level` block at `phys`, built without TLBIs or cache maintenance.
    @inlinable
    func createUnlinked(phys: UInt64, level: Level, prot: Prot,
                        forcePTE: Bool) -> (Int32, UnsafeMutablePointer<UInt64>?) {
        let size = s2.pointee.math.size(level)
        if phys & (size &- 1) != 0 { return (KernelError.einval.code, nil) }
        guard let attr = s2.pointee.attributes(prot) else { return (KernelError.einval.code, nil) }
        guard let tablePA = s2.pointee.arena.allocatePage() else { return (KernelError.enomem.code, nil) }
        let table = s2.pointee.arena.pointer(tablePA)
        // create_unlinked walks with LEAF only: no table is replaced on the way down.
        var v = Stage2MapVisitor(s2, phys: phys, attr: attr, walkFlags: [.leaf, .skipBBMTLBI, .skipCMO],
                                 forcePTE: forcePTE, visits: [])
        let r = s2.pointee.walker.walkUnlinked(table, level: level.next, size: size, visitor: &v)
        if r != 0 {
            s2.pointee.freeUnlinked(table, level: level)
            return (r, nil)
        }
        return (0, table)
    }
}

