import CKVMPageTable

extension Stage2PageTable {
    /// `kvm_pgtable_stage2_map`: map `[addr, addr + size)` to `phys` with
    /// `prot`, using the largest block each step's alignment allows.
    ///
    /// Re-mapping an identical mapping, or one differing only in
    /// permissions, changes nothing (the kernel's visitor says `-EAGAIN`,
    /// which a walk with no flags swallows). Running out of budget leaves
    /// whatever was mapped before, as the kernel does.
    @inlinable
    public func map(_ addr: UInt64, size: UInt64, to phys: UInt64, prot: Prot,
                    flags: WalkFlags = []) throws(KernelError) {
        let code = recording { m in mapCode(addr, size: size, phys: phys, prot: prot, flags: flags, &m) }
        try Self.check(code)
    }

    @inlinable
    func mapCode(_ addr: UInt64, size: UInt64, phys: UInt64, prot: Prot,
                 flags: WalkFlags, _ m: inout Maintenance) -> Int32 {
        guard let attr = hot.pointee.context.attributes(prot) else { return KernelError.einval.code }
        return mapCode(addr, size: size, phys: phys, attributes: attr, flags: flags, &m)
    }

    /// The map walk with attributes already encoded.
    @inlinable
    func mapCode(_ addr: UInt64, size: UInt64, phys: UInt64, attributes attr: UInt64,
                 flags: WalkFlags, _ m: inout Maintenance) -> Int32 {
        var v = Stage2MapVisitor(contextPointer, phys: phys & ~(hot.pointee.context.math.pageSize &- 1), attr: attr,
                                 walkFlags: flags)
        let r = hot.pointee.walker.walk(addr, size: size, visitor: &v)
        m += v.maintenance
        return r
    }
}

/// `stage2_map_walker`: try a leaf at each entry; on the way down, replace
/// a table with a block where one fits; where none fits, install a table.
@usableFromInline
struct Stage2MapVisitor: Visitor {
    @usableFromInline let s2: UnsafePointer<Stage2Context>
    /// The PA the walk's first address maps to (reset per ioremap step).
    @usableFromInline var phys: UInt64
    @usableFromInline let attr: UInt64
    @usableFromInline let forcePTE: Bool
    @usableFromInline let flags: WalkFlags
    @usableFromInline var maintenance = Maintenance()

    @inlinable
    init(_ s2: UnsafePointer<Stage2Context>, phys: UInt64, attr: UInt64, walkFlags: WalkFlags, forcePTE: Bool = false,
         visits: WalkFlags = [.tablePre, .leaf]) {
        self.s2 = s2
        self.phys = phys
        self.attr = attr
        self.forcePTE = forcePTE
        self.flags = walkFlags.union(visits)
    }

    @inlinable @inline(__always)
    func physical(_ ctx: VisitContext) -> UInt64 { phys &+ (ctx.addr &- ctx.start) }

    /// `stage2_leaf_mapping_allowed`.
    @inlinable @inline(__always)
    func leafAllowed(_ ctx: VisitContext) -> Bool {
        if forcePTE && !ctx.level.isLast { return false }
        return s2.pointee.blockFits(ctx, phys: physical(ctx))
    }

    /// `stage2_map_walker_try_leaf`.
    @inlinable @inline(__always)
    mutating func tryLeaf(_ ctx: VisitContext) -> Int32 {
        guard leafAllowed(ctx) else { return KernelError.e2big.code }
        let pa = physical(ctx)
        let new = s2.pointee.leafPTE(pa, attr, ctx.level)
        let old = ctx.old
        // Same mapping, or only permissions differ: leave it to a later fault.
        if old & KVMPT_PTE_VALID != 0, (old ^ new) & ~KVMPT_S2_PERMS == 0 {
            return KernelError.eagain.code
        }
        if !ctx.isShared, (old ^ new) & ~KVMPT_PTE_LEAF_ATTR_HI_SW == 0 {
            let oldCounted = Stage2Context.isCounted(old)
            if oldCounted != Stage2Context.isCounted(new) {
                if oldCounted { s2.pointee.arena.putPage(holding: ctx.ptep) } else { s2.pointee.arena.getPage(holding: ctx.ptep) }
            }
            ctx.ptep.pointee = new
            return 0
        }
        guard s2.pointee.tryBreak(ctx, &maintenance) else { return KernelError.eagain.code }
        if !ctx.flags.contains(.skipCMO) {
            let bytes = s2.pointee.math.size(ctx.level)
            // With FWB the kernel's clean_dcache_guest_page() returns at once.
            if !s2.pointee.fwb, s2.pointee.isCacheable(new) { maintenance.dcacheBytes &+= bytes }
            if Stage2Context.isExecutable(new) { maintenance.icacheBytes &+= bytes }
        }
        s2.pointee.make(ctx, new)
        return 0
    }

    @inlinable @inline(__always)
    mutating func visit(_ ctx: inout VisitContext, _ visit: Visit) -> Int32 {
        switch visit {
        case .tablePre:
            guard leafAllowed(ctx) else { return 0 }
            let child = s2.pointee.arena.pointer(s2.pointee.format.physical(fromPTE: ctx.old))
            let r = tryLeaf(ctx)
            if r != 0 { return r }
            s2.pointee.freeUnlinked(child, level: ctx.level)
            return 0
        case .leaf:
            let r = tryLeaf(ctx)
            if r != KernelError.e2big.code { return r }
            if ctx.level.isLast { return KernelError.einval.code }
            guard let childPA = s2.pointee.arena.allocatePage() else { return KernelError.enomem.code }
            guard s2.pointee.tryBreak(ctx, &maintenance) else {
                s2.pointee.arena.putPage(holding: s2.pointee.arena.pointer(childPA))
                return KernelError.eagain.code
            }
            s2.pointee.make(ctx, s2.pointee.tablePTE(childPA))
            return 0
        case .tablePost:
            return KernelError.einval.code
        }
    }
}
