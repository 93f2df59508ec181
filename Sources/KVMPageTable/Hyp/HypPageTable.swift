import CKVMPageTable

/// The hypervisor's own stage-1 table (EL2), operated on as the kernel's
/// `kvm_pgtable_hyp_*` functions operate on theirs.
public final class HypPageTable: PageTable {
    /// The table's shape.
    public let geometry: TableGeometry
    /// Where the pages live.
    public let arena: PageArena
    /// Physical address of the root page.
    public let rootPhysicalAddress: UInt64
    /// Everything issued since the table was made.
    public private(set) var maintenance = Maintenance()
    /// What the most recent operation issued.
    public private(set) var lastMaintenance = Maintenance()

    /// An empty table (`kvm_pgtable_hyp_init`): one zeroed root page.
    public init(geometry: TableGeometry, arena: PageArena? = nil) throws(KernelError) {
        precondition(geometry.kind == .hyp, "a hyp table needs a hyp geometry")
        self.geometry = geometry
        let arena = try PageArena.existingOrNew(arena, granule: geometry.granule)
        self.arena = arena
        self.rootPhysicalAddress = try arena.allocateRoot(pages: 1)
    }

    /// A table for a script configuration.
    public convenience init(_ configuration: ScriptConfiguration) throws {
        try self.init(geometry: TableGeometry(configuration))
    }

    var fastWalker: Walker<ArenaView> {
        Walker(memory: arena.view, geometry: geometry, rootPhysicalAddress: rootPhysicalAddress)
    }

    /// `hyp_set_prot_attr`: stage-1 attributes for `prot`, or nil where the
    /// kernel returns `-EINVAL` (no read; execute with write or device).
    public func attributes(_ prot: Prot) -> UInt64? {
        let device = prot.contains(.device)
        guard prot.contains(.read) else { return nil }
        var attr = (device ? KVMPT_MT_DEVICE_nGnRE : KVMPT_MT_NORMAL) << 2
        if !prot.intersection(.execute).isEmpty {
            if prot.contains(.write) || device { return nil }
        } else {
            attr |= KVMPT_S1_XN
        }
        attr |= (prot.contains(.write) ? KVMPT_S1_AP_RW : KVMPT_S1_AP_RO) << 6
        if !geometry.lpa2 { attr |= KVMPT_S1_SH_IS << 8 }
        attr |= KVMPT_S1_AF
        attr |= prot.rawValue & KVMPT_PTE_LEAF_ATTR_HI_SW
        return attr
    }

    func recording<R>(_ body: (inout Maintenance) -> R) -> R {
        let (r, done) = MaintenanceRecorder.run(on: arena, body)
        lastMaintenance = done
        maintenance += done
        return r
    }

    /// `kvm_pgtable_hyp_map`: map `[addr, addr + size)` to `phys`.
    ///
    /// Remapping identically is allowed; a different mapping over a valid
    /// leaf is not (at the last level `-EINVAL`; above it the kernel WARNs
    /// and installs a new table over the leaf, which this model repeats).
    public func map(_ addr: UInt64, size: UInt64, to phys: UInt64, prot: Prot) throws(KernelError) {
        let code: Int32 = recording { _ in
            guard let attr = attributes(prot) else { return KernelError.einval.code }
            var v = HypMapVisitor(arena: arena.view, format: format,
                                  phys: phys & ~(geometry.granule.pageSize - 1), attr: attr)
            return fastWalker.walk(addr, size: size, visitor: &v)
        }
        if let e = KernelError(code: code) { throw e }
    }

    /// `kvm_pgtable_hyp_unmap`: clear leaves from `addr` on, stopping at the
    /// first invalid entry or at a block that reaches past the range; returns
    /// the bytes unmapped. Tables emptied on the way are freed.
    @discardableResult
    public func unmap(_ addr: UInt64, size: UInt64) -> UInt64 {
        recording { m in
            var v = HypUnmapVisitor(arena: arena.view, format: format)
            _ = fastWalker.walk(addr, size: size, visitor: &v)
            m.tlbiIPA += v.tlbis
            return v.unmapped
        }
    }
}

/// `hyp_map_walker`.
@usableFromInline
struct HypMapVisitor: Visitor {
    @usableFromInline let arena: ArenaView
    @usableFromInline let format: DescriptorFormat
    @usableFromInline let phys: UInt64
    @usableFromInline let attr: UInt64

    @usableFromInline let math: LevelMath

    @inlinable init(arena: ArenaView, format: DescriptorFormat, phys: UInt64, attr: UInt64) {
        self.arena = arena
        self.format = format
        self.math = LevelMath(format.granule)
        self.phys = phys
        self.attr = attr
    }

    @inlinable var flags: WalkFlags { .leaf }

    /// `hyp_map_walker_try_leaf`.
    @inlinable
    func tryLeaf(_ ctx: VisitContext) -> Bool {
        let pa = phys &+ (ctx.addr &- ctx.start)
        guard math.leafFits(ctx.level, addr: ctx.addr, end: ctx.end, phys: pa) else { return false }
        let new = format.leafPTE(pa, attributes: attr, level: ctx.level)
        if ctx.old == new { return true }
        if ctx.old & KVMPT_PTE_VALID == 0 {
            arena.getPage(holding: ctx.ptep)
        } else if (ctx.old ^ new) & ~KVMPT_PTE_LEAF_ATTR_HI_SW != 0 {
            return false  // the kernel WARNs here
        }
        ctx.ptep.pointee = new
        return true
    }

    @inlinable
    mutating func visit(_ ctx: inout VisitContext, _ visit: Visit) -> Int32 {
        if tryLeaf(ctx) { return 0 }
        if ctx.level.isLast { return KernelError.einval.code }
        guard let child = arena.allocatePage() else { return KernelError.enomem.code }
        arena.getPage(holding: ctx.ptep)
        ctx.ptep.pointee = format.tablePTE(child)
        return 0
    }
}

/// `hyp_unmap_walker`.
@usableFromInline
struct HypUnmapVisitor: Visitor {
    @usableFromInline let arena: ArenaView
    @usableFromInline let format: DescriptorFormat
    @usableFromInline var unmapped: UInt64 = 0
    @usableFromInline var tlbis = 0

    @inlinable init(arena: ArenaView, format: DescriptorFormat) {
        self.arena = arena
        self.format = format
    }

    @inlinable var flags: WalkFlags { [.leaf, .tablePost] }

    @inlinable
    mutating func visit(_ ctx: inout VisitContext, _ visit: Visit) -> Int32 {
        let old = ctx.old
        guard old & KVMPT_PTE_VALID != 0 else { return KernelError.einval.code }
        let size = format.granule.size(at: ctx.level)
        var child: UnsafeMutablePointer<UInt64>? = nil
        if Descriptor(old).isTable(at: ctx.level) {
            let c = arena.pointer(format.physical(fromPTE: old))
            if arena.pageCount(holding: c) != 1 { return 0 }
            child = c
            ctx.ptep.pointee = 0
            tlbis += 1
        } else {
            if ctx.end &- ctx.addr < size { return KernelError.einval.code }
            ctx.ptep.pointee = 0
            tlbis += 1
            unmapped &+= size
        }
        arena.putPage(holding: ctx.ptep)
        if let child { arena.putPage(holding: child) }
        return 0
    }
}
