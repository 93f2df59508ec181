import CKVMPageTable

extension Stage2PageTable {
    /// `kvm_pgtable_stage2_test_clear_young`: whether any valid leaf in range
    /// has its access flag set, clearing the flags when `mkold`.
    ///
    /// No TLBI: the kernel leaves that to the MMU notifier. A walk error
    /// (an out-of-range address) reads as "not young", as in the kernel.
    @inlinable
    public func testClearYoung(_ addr: UInt64, size: UInt64, mkold: Bool) -> Bool {
        recording { _ in
            var v = Stage2AgeVisitor(s2: contextPointer, mkold: mkold)
            _ = hot.pointee.walker.walk(addr, size: size, visitor: &v)
            return v.young
        }
    }
}

/// `stage2_age_walker`.
@usableFromInline
struct Stage2AgeVisitor: Visitor {
    @usableFromInline let s2: UnsafePointer<Stage2Context>
    @usableFromInline let mkold: Bool
    @usableFromInline var young = false

    @inlinable init(s2: UnsafePointer<Stage2Context>, mkold: Bool) {
        self.s2 = s2
        self.mkold = mkold
    }

    @inlinable var flags: WalkFlags { .leaf }

    @inlinable @inline(__always)
    mutating func visit(_ ctx: inout VisitContext, _ visit: Visit) -> Int32 {
        let new = ctx.old & ~KVMPT_S2_AF
        if ctx.old & KVMPT_PTE_VALID == 0 || new == ctx.old { return 0 }
        young = true
        if mkold, !s2.pointee.trySet(ctx, new) { return KernelError.eagain.code }
        return 0
    }
}
