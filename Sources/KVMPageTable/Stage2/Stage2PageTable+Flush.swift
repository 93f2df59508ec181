import CKVMPageTable

extension Stage2PageTable {
    /// `kvm_pgtable_stage2_flush`: clean and invalidate every cacheable leaf
    /// in range to the PoC; nothing at all with FWB.
    @inlinable
    public func flush(_ addr: UInt64, size: UInt64) throws(KernelError) {
        let code: Int32 = recording { m in
            if hot.pointee.context.fwb { return 0 }
            var v = Stage2FlushVisitor(s2: contextPointer)
            let r = hot.pointee.walker.walk(addr, size: size, visitor: &v)
            m.dcacheBytes &+= v.bytes
            return r
        }
        try Self.check(code)
    }
}

/// `stage2_flush_walker`.
@usableFromInline
struct Stage2FlushVisitor: Visitor {
    @usableFromInline let s2: UnsafePointer<Stage2Context>
    @usableFromInline var bytes: UInt64 = 0
    @inlinable init(s2: UnsafePointer<Stage2Context>) { self.s2 = s2 }
    @inlinable var flags: WalkFlags { .leaf }

    @inlinable @inline(__always)
    mutating func visit(_ ctx: inout VisitContext, _ visit: Visit) -> Int32 {
        if s2.pointee.isCacheable(ctx.old) { bytes &+= s2.pointee.math.size(ctx.level) }
        return 0
    }
}
