import CKVMPageTable

/// Walks a whole table and emits FORMAT.md's canonical dump lines:
/// `L<level> <first input address> <descriptor>` for every non-zero entry in
/// depth-first pre-order, with each table pointer rewritten to the table's
/// canonical address so that the dump does not depend on page placement.
///
/// Root pages are canonical pages `0 ..< rootPages`; every other table gets
/// the next number the first time the dump reaches it. A table reached a
/// second time (possible only in a corrupt image) is printed with its first
/// number and not walked again.
public struct CanonicalDumpVisitor<Sink: DumpSink>: Visitor {
    /// Where lines go.
    public var sink: Sink
    /// Table pages counted so far, root pages included.
    public var tables: Int
    /// Valid leaves per level, indexed by `level + 1`.
    public var leaves: [Int] { [leafCounts.0, leafCounts.1, leafCounts.2, leafCounts.3, leafCounts.4] }
    @usableFromInline var leafCounts = (0, 0, 0, 0, 0)

    @usableFromInline let format: DescriptorFormat
    @usableFromInline let pageSize: UInt64
    @usableFromInline var numbers: [UInt64: UInt64] = [:]

    /// A dump of a table with `geometry`'s root.
    public init(sink: Sink, geometry: TableGeometry) {
        self.sink = sink
        self.format = geometry.format
        self.pageSize = geometry.granule.pageSize
        self.tables = geometry.rootPages
    }

    /// Pre-order and leaf visits.
    public var flags: WalkFlags { [.tablePre, .leaf] }

    /// The canonical number of the table at `pa`, assigning the next one on
    /// first sight.
    @inlinable
    mutating func number(of pa: UInt64) -> (UInt64, isNew: Bool) {
        if let n = numbers[pa] { return (n, false) }
        let n = UInt64(tables)
        numbers[pa] = n
        tables += 1
        return (n, true)
    }

    /// Emits one line per non-zero entry.
    @inlinable
    public mutating func visit(_ ctx: inout VisitContext, _ visit: Visit) -> Int32 {
        var pte = ctx.old
        if pte == 0 { return 0 }
        if visit == .tablePre {
            let (n, _) = number(of: format.physical(fromPTE: pte))
            pte = (pte & ~format.addressMask) | format.pte(fromPhysical: n &* pageSize)
        } else if pte & KVMPT_PTE_VALID != 0 {
            switch ctx.level.rawValue {
            case -1: leafCounts.0 += 1
            case 0: leafCounts.1 += 1
            case 1: leafCounts.2 += 1
            case 2: leafCounts.3 += 1
            default: leafCounts.4 += 1
            }
        }
        sink.emit(level: ctx.level.rawValue, address: ctx.addr, descriptor: pte)
        return 0
    }

    /// Walks each table once.
    @inlinable
    public mutating func shouldDescend(_ ctx: VisitContext, into physicalAddress: UInt64) -> Bool {
        descended.insert(physicalAddress).inserted
    }

    @usableFromInline var descended: Set<UInt64> = []
}

/// One line: table pages, valid leaves per level, and the hash of the dump.
public struct TableSummary: Hashable, Sendable, CustomStringConvertible {
    /// Table pages reachable from the root, root pages included.
    public var tables: Int
    /// Valid leaves per level, from the start level to 3.
    public var leaves: [(level: Level, count: Int)]
    /// FNV-1a of the canonical dump.
    public var fnv1a: UInt64

    /// Equal counts and hash.
    public static func == (a: TableSummary, b: TableSummary) -> Bool {
        a.tables == b.tables && a.fnv1a == b.fnv1a
            && a.leaves.map(\.count) == b.leaves.map(\.count)
            && a.leaves.map(\.level) == b.leaves.map(\.level)
    }

    /// Hashes the counts and the dump hash.
    public func hash(into h: inout Hasher) {
        h.combine(tables)
        h.combine(fnv1a)
        for l in leaves { h.combine(l.level); h.combine(l.count) }
    }

    /// `summary tables=N leaves=L1:…,L2:…,L3:… fnv1a=0x…`.
    public var description: String {
        let l = leaves.map { "\($0.level):\($0.count)" }.joined(separator: ",")
        return "summary tables=\(tables) leaves=\(l) fnv1a=\(Hex.padded(fnv1a))"
    }
}

extension Walker {
    /// Walks the whole table into `sink`; returns the visitor's counts.
    public func canonicalDump<Sink: DumpSink>(into sink: Sink) -> (sink: Sink, tables: Int, leaves: [Int], code: Int32) {
        var v = CanonicalDumpVisitor(sink: sink, geometry: geometry)
        let r = walk(0, size: geometry.inputLimit, visitor: &v)
        return (v.sink, v.tables, v.leaves, r)
    }

    /// The canonical dump lines as text, each ending in `\n`.
    public func canonicalDumpText() -> String {
        canonicalDump(into: DumpText()).sink.text
    }

    /// The `summary` line's numbers.
    public func summary() -> TableSummary {
        let d = canonicalDump(into: DumpHasher())
        var leaves: [(Level, Int)] = []
        var level = geometry.startLevel
        while level <= .last {
            leaves.append((level, d.leaves[Int(level.rawValue) + 1]))
            level = level.next
        }
        return TableSummary(tables: d.tables, leaves: leaves, fnv1a: d.sink.value)
    }
}
