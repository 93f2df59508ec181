/// What stage-2 and hyp tables share: a root in an arena, a geometry, and
/// the maintenance their operations have issued.
public protocol PageTable: AnyObject {
    /// The table's shape.
    var geometry: TableGeometry { get }
    /// Where its pages live.
    var arena: PageArena { get }
    /// Physical address of the first root page.
    var rootPhysicalAddress: UInt64 { get }
    /// Everything issued since the table was made.
    var maintenance: Maintenance { get }
}

extension PageTable {
    /// The descriptor format.
    public var format: DescriptorFormat { geometry.format }

    /// A walker over this table's memory.
    @inlinable
    public var walker: Walker<PageArena> {
        Walker(memory: arena, geometry: geometry, rootPhysicalAddress: rootPhysicalAddress)
    }

    /// `kvm_pgtable_get_leaf`: the entry a walk of the page at `addr` meets,
    /// and its level (for a hole, the level at which the walk met it).
    public func leaf(at addr: UInt64) throws(KernelError) -> (level: Level, descriptor: Descriptor) {
        var v = LeafFinder()
        let page = geometry.granule.pageSize
        let r = walker.walk(addr & ~(page - 1), size: page, visitor: &v)
        if let e = KernelError(code: r) { throw e }
        return (v.level, Descriptor(v.pte))
    }
}

/// Remembers the last leaf visited.
@usableFromInline
struct LeafFinder: Visitor {
    @usableFromInline var pte: UInt64 = 0
    @usableFromInline var level = Level(0)
    @usableFromInline init() {}
    @inlinable var flags: WalkFlags { .leaf }
    @inlinable mutating func visit(_ ctx: inout VisitContext, _ visit: Visit) -> Int32 {
        pte = ctx.old
        level = ctx.level
        return 0
    }
}

/// Runs one operation and folds what it issued, page traffic included, into
/// a ``Maintenance`` record.
@usableFromInline
struct MaintenanceRecorder {
    @usableFromInline let arena: PageArena
    @usableFromInline let allocated: Int
    @usableFromInline let freed: Int

    @inlinable init(_ arena: PageArena) {
        self.arena = arena
        allocated = arena.allocatedCount
        freed = arena.freedCount
    }

    /// The record with the arena's page traffic since `init` filled in.
    @inlinable func finish(_ m: Maintenance) -> Maintenance {
        var m = m
        m.pagesAllocated = arena.allocatedCount - allocated
        m.pagesFreed = arena.freedCount - freed
        return m
    }

    /// Runs `body` (one operation) and returns its result with everything
    /// it recorded, page traffic included.
    @inlinable
    static func run<R>(on arena: PageArena, _ body: (inout Maintenance) -> R) -> (R, Maintenance) {
        let recorder = MaintenanceRecorder(arena)
        var m = Maintenance()
        let r = body(&m)
        return (r, recorder.finish(m))
    }
}
