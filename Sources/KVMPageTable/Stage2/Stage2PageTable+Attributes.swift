import CKVMPageTable

extension Stage2PageTable {
    /// `stage2_update_leaf_attrs`: set and clear attribute bits on every
    /// valid leaf in range; returns the walk's code and the last leaf seen.
    @inlinable
    func updateLeafAttributes(_ addr: UInt64, size: UInt64, set: UInt64, clear: UInt64,
                              flags: WalkFlags, _ m: inout Maintenance) -> (code: Int32, level: Level) {
        let mask = KVMPT_PTE_LEAF_ATTR_LO | KVMPT_PTE_LEAF_ATTR_HI
        var v = Stage2AttributeVisitor(contextPointer, set: set & mask, clear: clear & mask, walkFlags: flags)
        let r = hot.pointee.walker.walk(addr, size: size, visitor: &v)
        m += v.maintenance
        return (r, v.level)
    }

    /// `kvm_pgtable_stage2_wrprotect`: clear S2AP[1] on every valid leaf.
    @inlinable
    public func writeProtect(_ addr: UInt64, size: UInt64) throws(KernelError) {
        let code = recording { m in
            updateLeafAttributes(addr, size: size, set: 0, clear: KVMPT_S2_S2AP_W, flags: [], &m).code
        }
        try Self.check(code)
    }

    /// `kvm_pgtable_stage2_mkyoung`: set the access flag of the leaf at
    /// `addr`, walking as the access-fault handler does. Like the kernel's,
    /// it reports nothing.
    @inlinable
    public func makeYoung(_ addr: UInt64, flags: WalkFlags = [.shared, .handleFault]) {
        recording { m in
            _ = updateLeafAttributes(addr, size: 1, set: KVMPT_S2_AF, clear: 0, flags: flags, &m)
        }
    }

    /// `kvm_pgtable_stage2_relax_perms`: add the permissions in `prot` to
    /// the leaf at `addr` and set its XN field from `prot`'s execute bits,
    /// then invalidate the IPA on this CPU (even after `-EAGAIN`).
    @inlinable
    public func relaxPermissions(_ addr: UInt64, prot: Prot,
                                 flags: WalkFlags = [.shared, .handleFault]) throws(KernelError) {
        let code: Int32 = recording { m in
            if prot.rawValue & KVMPT_PTE_LEAF_ATTR_HI_SW != 0 { return KernelError.einval.code }
            var set: UInt64 = 0
            if prot.contains(.read) { set |= KVMPT_S2_S2AP_R }
            if prot.contains(.write) { set |= KVMPT_S2_S2AP_W }
            guard let xn = hot.pointee.context.xnField(prot) else { return KernelError.einval.code }
            set |= xn & KVMPT_S2_XN
            let clear = ~xn & KVMPT_S2_XN
            let r = updateLeafAttributes(addr, size: 1, set: set, clear: clear, flags: flags, &m).code
            if r == 0 || r == KernelError.eagain.code { m.tlbiIPA += 1 }
            return r
        }
        try Self.check(code)
    }
}

/// `stage2_attr_walker`.
@usableFromInline
struct Stage2AttributeVisitor: Visitor {
    @usableFromInline let s2: UnsafePointer<Stage2Context>
    @usableFromInline let set: UInt64
    @usableFromInline let clear: UInt64
    @usableFromInline let flags: WalkFlags
    @usableFromInline var level = Level(0)
    @usableFromInline var pte: UInt64 = 0
    @usableFromInline var maintenance = Maintenance()

    @inlinable
    init(_ s2: UnsafePointer<Stage2Context>, set: UInt64, clear: UInt64, walkFlags: WalkFlags) {
        self.s2 = s2
        self.set = set
        self.clear = clear
        self.flags = walkFlags.union(.leaf)
    }

    @inlinable @inline(__always)
    mutating func visit(_ ctx: inout VisitContext, _ visit: Visit) -> Int32 {
        let old = ctx.old
        guard old & KVMPT_PTE_VALID != 0 else { return KernelError.eagain.code }
        level = ctx.level
        pte = old
        let new = (old & ~clear) | set
        if new != old {
            if Stage2Context.isExecutable(new), !Stage2Context.isExecutable(old) {
                maintenance.icacheBytes &+= s2.pointee.math.size(ctx.level)
            }
            if !s2.pointee.trySet(ctx, new) { return KernelError.eagain.code }
        }
        return 0
    }
}
