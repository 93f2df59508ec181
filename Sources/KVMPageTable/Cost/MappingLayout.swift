/// What a mapping strategy left in the table over the region: the leaf
/// sizes along the IPA range and the descriptors it wrote.
public struct MappingLayout: Hashable, Sendable {
    /// A stretch of the region mapped with leaves of one size.
    public struct Run: Hashable, Sendable {
        /// First IPA of the stretch.
        public var start: UInt64
        /// End of the stretch (exclusive).
        public var end: UInt64
        /// Bytes each leaf maps; 0 where nothing is mapped.
        public var leafSize: UInt64
        /// A run.
        public init(start: UInt64, end: UInt64, leafSize: UInt64) {
            self.start = start
            self.end = end
            self.leafSize = leafSize
        }
    }

    /// The runs, in address order, covering the region exactly.
    public var runs: [Run] = []
    /// Valid leaves by the bytes each maps, largest first.
    public var leaves: [(size: UInt64, count: Int)] {
        leafCounts.sorted { $0.key > $1.key }.map { ($0.key, $0.value) }
    }
    /// Valid leaves by size.
    public var leafCounts: [UInt64: Int] = [:]
    /// Table descriptors met on the way to the region's leaves.
    public var tableDescriptors = 0

    /// Every valid descriptor over the region: leaves and tables. On a table
    /// that held nothing before, that is the descriptors the mapping wrote.
    public var descriptors: Int { leafCounts.values.reduce(0, +) + tableDescriptors }

    /// An empty layout.
    public init() {}

    /// Reads the layout of `[start, start + size)` from `table` with one walk.
    public init(of table: some PageTable, start: UInt64, size: UInt64) {
        var v = LayoutVisitor(granule: table.geometry.granule, start: start, end: start &+ size)
        _ = table.walker.walk(start, size: size, visitor: &v)
        self = v.layout
    }
}

/// Counts descriptors and merges leaves of one size into runs.
struct LayoutVisitor: Visitor {
    let granule: Granule
    let start: UInt64
    let end: UInt64
    var layout = MappingLayout()

    init(granule: Granule, start: UInt64, end: UInt64) {
        self.granule = granule
        self.start = start
        self.end = end
    }

    var flags: WalkFlags { [.leaf, .tablePre] }

    mutating func visit(_ ctx: inout VisitContext, _ visit: Visit) -> Int32 {
        switch visit {
        case .tablePre:
            layout.tableDescriptors += 1
        case .leaf:
            let size = granule.size(at: ctx.level)
            let valid = Descriptor(ctx.old).isValid
            if valid { layout.leafCounts[size, default: 0] += 1 }
            let entryStart = ctx.addr & ~(size &- 1)
            let lo = max(entryStart, start), hi = min(entryStart &+ size, end)
            guard lo < hi else { return 0 }
            let kind: UInt64 = valid ? size : 0
            if var last = layout.runs.last, last.leafSize == kind, last.end == lo {
                last.end = hi
                layout.runs[layout.runs.count - 1] = last
            } else {
                layout.runs.append(.init(start: lo, end: hi, leafSize: kind))
            }
        case .tablePost:
            break
        }
        return 0
    }
}
