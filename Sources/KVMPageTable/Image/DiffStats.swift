import CKVMPageTable

/// The leaf-position entries of a table, from an image walk or from a
/// `dump` section of a transcript: what ``TableDiff`` compares.
public struct TableSnapshot: Sendable {
    /// Stage-2 or hyp.
    public let kind: TableKind
    /// The descriptor format.
    public let format: DescriptorFormat
    /// The input address size.
    public let inputBits: Int
    /// Non-empty leaf-position entries, in address order.
    public let entries: [EntryRecord]
    /// Where it came from.
    public let name: String

    /// A snapshot.
    public init(kind: TableKind, format: DescriptorFormat, inputBits: Int, entries: [EntryRecord], name: String) {
        self.kind = kind
        self.format = format
        self.inputBits = inputBits
        self.entries = entries
        self.name = name
    }

    /// The snapshot of a view's table (problems are the caller's to report).
    public init<M>(_ view: TableInspector<M>, name: String) {
        self.init(kind: view.kind, format: view.format, inputBits: view.geometry.inputBits,
                  entries: view.entries().entries, name: name)
    }

    /// Parses the last `dump` … `end` section of a transcript. The
    /// configuration comes from the `# kvmpt v1 …` header line, or from
    /// `configuration` when the text has none.
    public static func parseTranscript(_ text: String, name: String,
                                       configuration: ScriptConfiguration? = nil) throws(ImageError) -> TableSnapshot {
        var config = configuration
        var section: [(Int, Substring)]?
        var current: [(Int, Substring)]?
        var lineNumber = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            if line.hasPrefix("# kvmpt v1 ") {
                var kind: TableKind?
                var granule: Granule?
                var bits: Int?
                var lpa2 = false
                for word in line.split(separator: " ") {
                    if word == "stage2" { kind = .stage2 }
                    if word == "hyp" { kind = .hyp }
                    guard let eq = word.firstIndex(of: "=") else { continue }
                    let k = word[..<eq], v = word[word.index(after: eq)...]
                    switch k {
                    case "granule": granule = Granule(name: String(v))
                    case "ia_bits", "va_bits": bits = Int(v)
                    case "lpa2": lpa2 = v == "1"
                    default: break
                    }
                }
                guard let kind, let granule, let bits else {
                    throw ImageError("\(name):\(lineNumber): cannot read the configuration header")
                }
                config = ScriptConfiguration(kind: kind, granule: granule, inputBits: bits, lpa2: lpa2)
            } else if line == "dump" {
                current = []
            } else if line == "end" {
                if let c = current { section = c }
                current = nil
            } else if current != nil {
                current!.append((lineNumber, line))
            }
        }
        guard let config else {
            throw ImageError("\(name): no '# kvmpt v1 …' header line: cannot tell the granule and format")
        }
        guard let section else {
            throw ImageError("\(name): no complete 'dump' … 'end' section")
        }
        let format = DescriptorFormat(granule: config.granule, lpa2: config.lpa2)
        var entries: [EntryRecord] = []
        var lastEnd: UInt64 = 0
        for (n, line) in section {
            let parts = line.split(separator: " ")
            guard parts.count == 3, parts[0].hasPrefix("L"), let level = Int8(parts[0].dropFirst()),
                  level >= Level.first.rawValue, level <= Level.last.rawValue,
                  parts[1].hasPrefix("0x"), let addr = UInt64(parts[1].dropFirst(2), radix: 16),
                  parts[2].hasPrefix("0x"), let pte = UInt64(parts[2].dropFirst(2), radix: 16) else {
                throw ImageError("\(name):\(n): expected 'L<level> 0x<address> 0x<descriptor>', found '\(line)'")
            }
            let l = Level(level)
            if Descriptor(pte).isTable(at: l) { continue }
            guard addr >= lastEnd else {
                throw ImageError("\(name):\(n): entry at \(Hex.short(addr)) is out of address order")
            }
            lastEnd = addr &+ config.granule.size(at: l)
            entries.append(EntryRecord(address: addr, level: l, descriptor: pte))
        }
        return TableSnapshot(kind: config.kind, format: format, inputBits: config.inputBits, entries: entries, name: name)
    }
}

/// One input range whose mapping differs between two snapshots.
public struct MappingChange: Hashable, Sendable {
    /// First input address.
    public var start: UInt64
    /// First input address past the range.
    public var end: UInt64
    /// The old entry covering `start` (nil: unmapped).
    public var old: EntryRecord?
    /// The new entry covering `start` (nil: unmapped).
    public var new: EntryRecord?
}

/// The input ranges whose mapping changed between two snapshots.
public enum TableDiff {
    /// Compares `a` and `b`: output address, attributes (the type bit that
    /// tells blocks from pages excepted) and invalid values. A range mapped
    /// alike with a different block/page structure is not a change.
    public static func changes(_ a: TableSnapshot, _ b: TableSnapshot) -> [MappingChange] {
        var out: [MappingChange] = []
        var i = 0, j = 0
        var x: UInt64 = 0
        let ea = a.entries, eb = b.entries
        func end(_ e: EntryRecord, _ f: DescriptorFormat) -> UInt64 { e.address &+ f.granule.size(at: e.level) }
        while true {
            while i < ea.count, end(ea[i], a.format) <= x { i += 1 }
            while j < eb.count, end(eb[j], b.format) <= x { j += 1 }
            var y = UInt64.max
            var ca: EntryRecord?, cb: EntryRecord?
            if i < ea.count {
                if ea[i].address <= x { ca = ea[i]; y = min(y, end(ea[i], a.format)) } else { y = min(y, ea[i].address) }
            }
            if j < eb.count {
                if eb[j].address <= x { cb = eb[j]; y = min(y, end(eb[j], b.format)) } else { y = min(y, eb[j].address) }
            }
            if i >= ea.count && j >= eb.count { break }
            if !same(ca, a.format, cb, b.format, at: x) {
                if var last = out.last, last.end == x,
                   continues(last.old, a.format, ca, at: last.start, x),
                   continues(last.new, b.format, cb, at: last.start, x) {
                    last.end = y
                    out[out.count - 1] = last
                } else {
                    out.append(MappingChange(start: x, end: y, old: ca, new: cb))
                }
            }
            x = y
        }
        return out
    }

    static let typeBit = KVMPT_PTE_TYPE

    static func pa(_ e: EntryRecord, _ f: DescriptorFormat, at x: UInt64) -> UInt64 {
        f.physical(fromPTE: e.descriptor) &+ (x &- e.address)
    }

    static func same(_ a: EntryRecord?, _ fa: DescriptorFormat, _ b: EntryRecord?, _ fb: DescriptorFormat, at x: UInt64) -> Bool {
        switch (a, b) {
        case (nil, nil): return true
        case let (a?, b?):
            if a.isValid != b.isValid { return false }
            if !a.isValid { return a.descriptor == b.descriptor }
            return (a.descriptor & ~fa.addressMask & ~typeBit) == (b.descriptor & ~fb.addressMask & ~typeBit)
                && pa(a, fa, at: x) == pa(b, fb, at: x)
        default: return false
        }
    }

    /// Whether `next` at `x` continues what `first` mapped from `start`.
    static func continues(_ first: EntryRecord?, _ f: DescriptorFormat, _ next: EntryRecord?, at start: UInt64, _ x: UInt64) -> Bool {
        switch (first, next) {
        case (nil, nil): return true
        case let (p?, n?):
            if p.isValid != n.isValid { return false }
            if !p.isValid { return p.descriptor == n.descriptor }
            return (p.descriptor & ~f.addressMask & ~typeBit) == (n.descriptor & ~f.addressMask & ~typeBit)
                && pa(p, f, at: start) &+ (x &- start) == pa(n, f, at: x)
        default: return false
        }
    }

    /// The changes as text: `--- A`, `+++ B`, then per range its size and
    /// old → new mapping; `no changes` when there are none.
    public static func text(_ a: TableSnapshot, _ b: TableSnapshot, changes: [MappingChange], fwb: (Bool, Bool) = (false, false)) -> String {
        var s = "--- \(a.name)\n+++ \(b.name)\n"
        if changes.isEmpty { return s + "no changes\n" }
        let da = AttributeDecoder(kind: a.kind, format: a.format, fwb: fwb.0)
        let db = AttributeDecoder(kind: b.kind, format: b.format, fwb: fwb.1)
        func side(_ e: EntryRecord?, _ f: DescriptorFormat, _ d: AttributeDecoder, _ at: UInt64) -> String {
            guard let e else { return "unmapped" }
            if !e.isValid { return "\(d.invalidAnnotation(e.descriptor)) (\(e.level))" }
            return "PA \(Hex.short(pa(e, f, at: at))) \(d.attributes(e.descriptor)) (\(e.level) \(e.level.isLast ? "page" : "block"))"
        }
        for c in changes {
            let tag = c.old == nil ? "+" : c.new == nil ? "-" : "~"
            s += "\(tag) \(Hex.padded(c.start))-\(Hex.padded(c.end)) \(pad(RegisterDecoding.size(c.end &- c.start), 6)): \(side(c.old, a.format, da, c.start)) => \(side(c.new, b.format, db, c.start))\n"
        }
        s += "\(changes.count) range\(changes.count == 1 ? "" : "s") changed\n"
        return s
    }
}

/// Table pages, leaves and block coverage of a table.
public struct TableStats: Sendable {
    /// Table pages per level (root pages included), from the start level.
    public var tablesPerLevel: [(level: Level, count: Int)] = []
    /// Valid leaves per level, from the start level.
    public var leavesPerLevel: [(level: Level, count: Int, size: UInt64)] = []
    /// Non-zero invalid entries (owner annotations, locked entries, junk).
    public var invalidEntries = 0
    /// Bytes of table memory.
    public var tableBytes: UInt64 = 0
    /// Bytes mapped by valid leaves.
    public var mappedBytes: UInt64 = 0
    /// Bytes of that mapped by blocks.
    public var blockBytes: UInt64 = 0

    /// The stats as text.
    public var text: String {
        var s = ""
        let tables = tablesPerLevel.reduce(0) { $0 + $1.count }
        s += "table pages: \(tables) (\(RegisterDecoding.size(tableBytes)) of table memory): "
        s += tablesPerLevel.map { "\($0.level):\($0.count)" }.joined(separator: " ") + "\n"
        s += "leaves: " + leavesPerLevel.map { "\($0.level):\($0.count) x \(RegisterDecoding.size($0.size))" }.joined(separator: " ") + "\n"
        let pct = mappedBytes == 0 ? 0 : Double(blockBytes) / Double(mappedBytes) * 100
        s += "mapped: \(Hex.short(mappedBytes)) bytes (\(mappedBytes == 0 ? "0" : RegisterDecoding.size(mappedBytes))); by blocks: \(Hex.short(blockBytes)) (\(formatPercent(pct)))\n"
        s += "invalid non-empty entries: \(invalidEntries)\n"
        return s
    }

    func formatPercent(_ p: Double) -> String {
        let tenths = Int((p * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)%"
    }
}

extension TableInspector {
    /// Table pages per level, memory used, leaves per level and size, and
    /// the fraction of the mapped space held by blocks.
    public func stats() -> (stats: TableStats, report: WalkReport) {
        let (entries, tables, report) = self.entries()
        var s = TableStats()
        var level = geometry.startLevel
        var tcount = [Int](repeating: 0, count: 6)
        var lcount = [Int](repeating: 0, count: 6)
        for t in tables where t.level.rawValue >= -1 && t.level.rawValue <= 3 { tcount[Int(t.level.rawValue) + 1] += 1 }
        for e in entries {
            if e.isValid {
                lcount[Int(e.level.rawValue) + 1] += 1
                let size = granule.size(at: e.level)
                s.mappedBytes &+= size
                if !e.level.isLast { s.blockBytes &+= size }
            } else {
                s.invalidEntries += 1
            }
        }
        while level <= .last {
            let i = Int(level.rawValue) + 1
            s.tablesPerLevel.append((level, tcount[i]))
            s.leavesPerLevel.append((level, lcount[i], granule.size(at: level)))
            level = level.next
        }
        s.tableBytes = UInt64(tables.count) &* granule.pageSize
        return (s, report)
    }
}
