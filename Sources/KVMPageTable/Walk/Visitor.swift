/// What a visitor sees of one entry (`struct kvm_pgtable_visit_ctx`).
public struct VisitContext {
    /// The entry itself, writable.
    public let ptep: UnsafeMutablePointer<UInt64>
    /// The entry's value when the visit began.
    public var old: UInt64
    /// The walk's first (page-aligned) address.
    public let start: UInt64
    /// The first input address this visit covers.
    public let addr: UInt64
    /// The walk's end (exclusive, page-aligned).
    public let end: UInt64
    /// The entry's level.
    public let level: Level
    /// The walk's flags.
    public let flags: WalkFlags

    /// A context.
    @inlinable
    public init(ptep: UnsafeMutablePointer<UInt64>, old: UInt64, start: UInt64, addr: UInt64,
                end: UInt64, level: Level, flags: WalkFlags) {
        self.ptep = ptep
        self.old = old
        self.start = start
        self.addr = addr
        self.end = end
        self.level = level
        self.flags = flags
    }

    /// Whether the walk shares the table with other walkers.
    @inlinable public var isShared: Bool { flags.contains(.shared) }
}

/// A page-table operation, or a view, as the walker drives it.
///
/// Like the kernel's `kvm_pgtable_walker`, a visitor names which visits it
/// wants and returns 0 or a negative errno from each; the walker stops on
/// an error (and on `-EAGAIN` only when walking for a fault). Visitors are
/// structs so that the walker specialises for each one.
public protocol Visitor {
    /// The visits wanted, plus walk-wide flags (shared, handle-fault, …).
    var flags: WalkFlags { get }

    /// One visit: 0 to go on, a negative errno to stop the walk.
    mutating func visit(_ ctx: inout VisitContext, _ visit: Visit) -> Int32

    /// Called when a table entry points outside the memory walked; the
    /// default stops the walk with `-EFAULT`.
    mutating func unreachableTable(_ ctx: VisitContext, physicalAddress: UInt64) -> Int32

    /// Whether to descend into the table at `physicalAddress`; read-only
    /// views of untrusted images use it to visit each table once.
    mutating func shouldDescend(_ ctx: VisitContext, into physicalAddress: UInt64) -> Bool
}

extension Visitor {
    /// Stops the walk with `-EFAULT`.
    @inlinable
    public mutating func unreachableTable(_ ctx: VisitContext, physicalAddress: UInt64) -> Int32 {
        KernelError.efault.code
    }

    /// Always descends.
    @inlinable
    public mutating func shouldDescend(_ ctx: VisitContext, into physicalAddress: UInt64) -> Bool { true }
}
