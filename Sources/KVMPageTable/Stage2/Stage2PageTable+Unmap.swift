import CKVMPageTable

extension Stage2PageTable {
    /// `kvm_pgtable_stage2_unmap`: clear every entry in `[addr, addr + size)`.
    ///
    /// A block only partly inside the range goes whole (the rest is faulted
    /// back lazily). Each cleared entry gets a TLBI unless FEAT_TLBIRANGE and
    /// FWB let the kernel defer them to range TLBIs over `[addr, addr +
    /// size)` after the walk; cacheable leaves are cleaned to the PoC without
    /// FWB; tables left empty are freed.
    @inlinable
    public func unmap(_ addr: UInt64, size: UInt64) throws(KernelError) {
        let code = recording { m in
            var v = Stage2UnmapVisitor(contextPointer)
            let r = hot.pointee.walker.walk(addr, size: size, visitor: &v)
            m += v.maintenance
            if v.deferTLBI {
                m.flushRange(size: size, pageShift: geometry.granule.pageShift, rangeSupported: true)
            }
            return r
        }
        try Self.check(code)
    }
}

/// `stage2_unmap_walker`.
@usableFromInline
struct Stage2UnmapVisitor: Visitor {
    @usableFromInline let s2: UnsafePointer<Stage2Context>
    /// `stage2_unmap_defer_tlb_flush`.
    @usableFromInline let deferTLBI: Bool
    @usableFromInline var maintenance = Maintenance()

    @inlinable init(_ s2: UnsafePointer<Stage2Context>) {
        self.s2 = s2
        self.deferTLBI = s2.pointee.tlbiRangeSupported && s2.pointee.fwb
    }

    @inlinable var flags: WalkFlags { [.leaf, .tablePost] }

    @inlinable @inline(__always)
    mutating func visit(_ ctx: inout VisitContext, _ visit: Visit) -> Int32 {
        let old = ctx.old
        let arena = s2.pointee.arena
        if old & KVMPT_PTE_VALID == 0 {
            if Stage2Context.isCounted(old) {
                ctx.ptep.pointee = 0
                arena.putPage(holding: ctx.ptep)
            }
            return 0
        }
        var child: UnsafeMutablePointer<UInt64>? = nil
        var needFlush = false
        let isTable = Descriptor(old).isTable(at: ctx.level)
        if isTable {
            let c = arena.pointer(s2.pointee.format.physical(fromPTE: old))
            if arena.pageCount(holding: c) != 1 { return 0 }
            child = c
        } else if s2.pointee.isCacheable(old) {
            needFlush = !s2.pointee.fwb
        }
        // stage2_unmap_put_pte
        ctx.ptep.pointee = 0
        if isTable || !deferTLBI { maintenance.tlbiIPA += 1 }
        arena.putPage(holding: ctx.ptep)
        if needFlush { maintenance.dcacheBytes &+= s2.pointee.math.size(ctx.level) }
        if let child { arena.putPage(holding: child) }
        return 0
    }
}
