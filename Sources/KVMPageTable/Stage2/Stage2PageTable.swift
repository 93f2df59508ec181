/// A guest stage-2 page table, operated on exactly as the kernel's
/// `kvm_pgtable_stage2_*` functions operate on theirs.
///
/// Each operation returns what the kernel returns and records the TLB and
/// cache maintenance it issued in ``maintenance``; ``lastMaintenance`` holds
/// the record of the most recent operation alone.
public final class Stage2PageTable: PageTable {
    /// The table's shape.
    public let geometry: TableGeometry
    /// CPU features in effect.
    public let features: Stage2Features
    /// Where the pages live.
    public let arena: PageArena
    /// Physical address of the first root page.
    public let rootPhysicalAddress: UInt64
    /// Everything issued since the table was made.
    public private(set) var maintenance = Maintenance()
    /// What the most recent operation issued.
    public private(set) var lastMaintenance = Maintenance()

    /// What the operations use in their loops, in memory the table owns,
    /// so that visitors carry a pointer instead of a copy.
    @usableFromInline let hot: UnsafeMutablePointer<Stage2Hot>

    /// The shared stage-2 context.
    @usableFromInline var contextPointer: UnsafePointer<Stage2Context> {
        UnsafeRawPointer(hot).assumingMemoryBound(to: Stage2Context.self)
    }

    /// An empty table (`kvm_pgtable_stage2_init`): zeroed root pages, taken
    /// outside the page budget.
    public init(geometry: TableGeometry, features: Stage2Features = [],
                arena: PageArena? = nil) throws(KernelError) {
        precondition(geometry.kind == .stage2, "a stage-2 table needs a stage-2 geometry")
        self.geometry = geometry
        self.features = features
        let arena = try PageArena.existingOrNew(arena, granule: geometry.granule)
        self.arena = arena
        self.rootPhysicalAddress = try arena.allocateRoot(pages: geometry.rootPages)
        let context = Stage2Context(arena: arena.view, geometry: geometry,
                                    root: rootPhysicalAddress, features: features)
        self.hot = .allocate(capacity: 1)
        hot.initialize(to: Stage2Hot(context: context, walker: context.walker))
    }

    deinit {
        hot.deinitialize(count: 1)
        hot.deallocate()
    }

    /// A table for a script configuration.
    public convenience init(_ configuration: ScriptConfiguration) throws {
        var features: Stage2Features = []
        if configuration.fwb { features.insert(.fwb) }
        if configuration.tlbiRange { features.insert(.tlbiRange) }
        try self.init(geometry: TableGeometry(configuration), features: features)
    }

    /// The stage-2 context (attribute encoding, break-before-make, …).
    @usableFromInline var context: Stage2Context { hot.pointee.context }

    /// Runs one operation, recording its maintenance.
    @inlinable
    func recording<R>(_ body: (inout Maintenance) -> R) -> R {
        let (r, done) = MaintenanceRecorder.run(on: arena, body)
        record(done)
        return r
    }

    @usableFromInline
    func record(_ m: Maintenance) {
        lastMaintenance = m
        maintenance += m
    }

    /// Throws the error a kernel return code names.
    @inlinable
    static func check(_ code: Int32) throws(KernelError) {
        if let e = KernelError(code: code) { throw e }
    }
}

/// The stage-2 context and the walker, kept together in table-owned memory.
/// The context comes first: visitors point at it.
@usableFromInline
struct Stage2Hot {
    @usableFromInline var context: Stage2Context
    @usableFromInline var walker: Walker<ArenaView>
    @usableFromInline init(context: Stage2Context, walker: Walker<ArenaView>) {
        self.context = context
        self.walker = walker
    }
}
