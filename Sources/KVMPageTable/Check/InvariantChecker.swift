import CKVMPageTable

/// A broken table invariant: which rule, where, and a message that names
/// the table page, the level, the input address and the entry involved.
public struct InvariantViolation: Error, CustomStringConvertible, Sendable {
    /// The invariants ``PageTable/check()`` enforces.
    public enum Rule: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        /// A table page's reference count is not 1 + its non-zero entries.
        case referenceCount = "refcount"
        /// A table page's reference count is higher than 1 + its non-zero
        /// entries, on a hyp table: what the kernel's `hyp_map_walker` leaves
        /// when it WARNs and installs a table over a different valid block
        /// (it takes a reference for the new table pointer although the entry
        /// was already counted). Reported apart so that callers reproducing
        /// that path on purpose can tell it from a real refcount bug.
        case hypWarnReferenceExcess = "refcount-excess-hyp-warn"
        /// A table page is pointed to by more than one table descriptor (or a
        /// table descriptor points at a root page).
        case reachedTwice = "reached-twice"
        /// A table descriptor points at a page the arena does not hold, or at
        /// a page that has been freed.
        case danglingTable = "dangling-table"
        /// A page is allocated but no table descriptor reaches it.
        case leak = "leak"
        /// A valid entry at the last level is not a page descriptor (a table
        /// or block encoding there is reserved: nothing may be walked below
        /// the last level).
        case lastLevelDescriptor = "last-level-descriptor"
        /// A block at a level where the granule allows none.
        case blockLevel = "block-level"
        /// A leaf whose output address is not aligned to the size it maps.
        case misalignedOutput = "misaligned-output"
        /// A stage-2 entry still locked (`KVM_INVALID_PTE_LOCKED`) between
        /// operations: a break-before-make that never made.
        case lockedEntry = "locked-entry"
        /// A root page's reference count is not what the kernel keeps.
        case rootPage = "root-page"

        /// The rule's short name.
        public var description: String { rawValue }
    }

    /// Which rule is broken.
    public var rule: Rule
    /// The table page involved (the page holding the entry, or the page
    /// that leaked), when there is one.
    public var tablePhysicalAddress: UInt64?
    /// The level of the entry or table page involved.
    public var level: Level?
    /// The first input address the entry covers.
    public var inputAddress: UInt64?
    /// The entry's raw value.
    public var descriptor: UInt64?
    /// What is broken, with address and level.
    public var description: String

    /// A violation with a free-form message.
    public init(rule: Rule, tablePhysicalAddress: UInt64? = nil, level: Level? = nil,
                inputAddress: UInt64? = nil, descriptor: UInt64? = nil, message: String) {
        self.rule = rule
        self.tablePhysicalAddress = tablePhysicalAddress
        self.level = level
        self.inputAddress = inputAddress
        self.descriptor = descriptor
        self.description = "[\(rule)] " + message
    }

    /// Whether this is a state the kernel itself produces on purpose-free
    /// paths the model reproduces (the hyp map WARN refcount excess).
    public var isKnownKernelOddity: Bool { rule == .hypWarnReferenceExcess }
}

extension PageTable {
    /// Checks every structural invariant of the table and throws the first
    /// one broken (see ``invariantViolations(limit:)`` for all of them).
    ///
    /// - every table page (root pages included) has reference count 1 + its
    ///   non-zero entries;
    /// - no table page is reached twice, and every table descriptor points at
    ///   a live page of the arena;
    /// - every allocated page is reachable from the root (no leak);
    /// - no table or block descriptor at the last level, no block at a level
    ///   where the granule forbids one;
    /// - every leaf's output address is aligned to the size it maps;
    /// - no stage-2 entry is left locked.
    public func check() throws(InvariantViolation) {
        if let first = invariantViolations(limit: 1).first { throw first }
    }

    /// Like ``check()``, but lets the hyp map WARN refcount excess pass
    /// (see ``InvariantViolation/Rule/hypWarnReferenceExcess``).
    public func checkToleratingKernelOddities() throws(InvariantViolation) {
        for v in invariantViolations(limit: Int.max) where !v.isKnownKernelOddity { throw v }
    }

    /// Every broken invariant, in walk order, up to `limit`.
    public func invariantViolations(limit: Int = Int.max) -> [InvariantViolation] {
        var checker = InvariantChecker(table: self, limit: limit)
        checker.run()
        return checker.violations
    }
}

/// A depth-first walk of the table memory that does not trust it: it never
/// walks a page twice, never follows a pointer outside the arena and never
/// walks below the last level.
struct InvariantChecker {
    let arena: PageArena
    let geometry: TableGeometry
    let format: DescriptorFormat
    let root: UInt64
    let limit: Int
    let isStage2: Bool
    var violations: [InvariantViolation] = []
    /// Table page → the level of the entries it holds.
    var seen: [UInt64: Level] = [:]
    var live: Set<UInt64> = []

    init(table: some PageTable, limit: Int) {
        arena = table.arena
        geometry = table.geometry
        format = table.geometry.format
        root = table.rootPhysicalAddress
        self.limit = limit
        isStage2 = table.geometry.kind == .stage2
    }

    var full: Bool { violations.count >= limit }

    mutating func report(_ v: InvariantViolation) {
        if !full { violations.append(v) }
    }

    static func hex(_ v: UInt64) -> String { Hex.padded(v) }

    mutating func run() {
        live = Set(arena.livePageAddresses())
        let page = geometry.granule.pageSize
        let rootSpan = geometry.granule.size(at: geometry.startLevel) &* UInt64(geometry.granule.entriesPerTable)
        for i in 0..<geometry.rootPages {
            let pa = root &+ UInt64(i) &* page
            seen[pa] = geometry.startLevel
        }
        for i in 0..<geometry.rootPages where !full {
            let pa = root &+ UInt64(i) &* page
            guard live.contains(pa) else {
                report(InvariantViolation(
                    rule: .rootPage, tablePhysicalAddress: pa, level: geometry.startLevel,
                    message: "root page \(i) at PA \(Self.hex(pa)) (\(geometry.startLevel)) is not allocated"))
                continue
            }
            checkTable(pa, level: geometry.startLevel, base: UInt64(i) &* rootSpan, isRoot: true)
        }
        if full { return }
        for pa in live.sorted() where seen[pa] == nil {
            report(InvariantViolation(
                rule: .leak, tablePhysicalAddress: pa,
                message: "page at PA \(Self.hex(pa)) is allocated (reference count \(arena.referenceCount(ofPageAt: pa))) but no table descriptor reaches it"))
            if full { return }
        }
    }

    mutating func checkTable(_ pa: UInt64, level: Level, base: UInt64, isRoot: Bool) {
        guard let table = arena.table(at: pa) else { return }
        let g = geometry.granule
        let entries = g.entriesPerTable
        let size = g.size(at: level)
        var nonZero = 0
        var children: [(UInt64, UInt64)] = []
        for i in 0..<entries {
            let pte = table[i]
            if pte == 0 { continue }
            nonZero += 1
            let addr = base &+ UInt64(i) &* size
            let d = Descriptor(pte)
            func where_() -> String {
                "\(level) entry \(i) of the table page at PA \(Self.hex(pa)) (input address \(Self.hex(addr)), descriptor \(Self.hex(pte)))"
            }
            if !d.isValid {
                if isStage2 && pte & KVMPT_INVALID_PTE_LOCKED != 0 {
                    report(InvariantViolation(rule: .lockedEntry, tablePhysicalAddress: pa, level: level,
                                              inputAddress: addr, descriptor: pte,
                                              message: "\(where_()) is still locked after the operation"))
                }
                continue
            }
            if level.isLast {
                if d.isReservedPage(at: level) {
                    report(InvariantViolation(rule: .lastLevelDescriptor, tablePhysicalAddress: pa, level: level,
                                              inputAddress: addr, descriptor: pte,
                                              message: "\(where_()) is a block/table encoding at the last level (reserved; must be a page)"))
                }
            } else if d.isTable(at: level) {
                children.append((format.physical(fromPTE: pte), addr))
                continue
            } else if !g.supportsLeaf(at: level) {
                report(InvariantViolation(rule: .blockLevel, tablePhysicalAddress: pa, level: level,
                                          inputAddress: addr, descriptor: pte,
                                          message: "\(where_()) is a block, but the \(g) granule allows blocks only from \(g.minimumBlockLevel)"))
            }
            let out = format.physical(fromPTE: pte)
            if out & (size &- 1) != 0 {
                report(InvariantViolation(rule: .misalignedOutput, tablePhysicalAddress: pa, level: level,
                                          inputAddress: addr, descriptor: pte,
                                          message: "\(where_()) maps \(Hex.short(size)) bytes at output address \(Self.hex(out)), not aligned to \(Hex.short(size))"))
            }
            if full { return }
        }
        let count = arena.referenceCount(ofPageAt: pa)
        let expected = 1 + nonZero
        if count != expected {
            let excess = !isStage2 && count > expected
            let what = isRoot ? "root table page" : "table page"
            var message = "\(what) at PA \(Self.hex(pa)) (\(level), input addresses from \(Self.hex(base))) has reference count \(count), expected 1 + \(nonZero) non-zero entries = \(expected)"
            if excess {
                message += " (the excess the kernel's hyp map leaves when it WARNs and installs a table over a different valid block)"
            }
            report(InvariantViolation(rule: excess ? .hypWarnReferenceExcess : .referenceCount,
                                      tablePhysicalAddress: pa, level: level, inputAddress: base, message: message))
        }
        for (child, addr) in children {
            if full { return }
            let next = level.next
            let pointer = "the \(level) table descriptor for input address \(Self.hex(addr)) in the table page at PA \(Self.hex(pa))"
            if let other = seen[child] {
                report(InvariantViolation(rule: .reachedTwice, tablePhysicalAddress: child, level: next,
                                          inputAddress: addr,
                                          message: "\(pointer) points at PA \(Self.hex(child)), already reached as a \(other) table page"))
                continue
            }
            guard arena.table(at: child) != nil, live.contains(child) else {
                report(InvariantViolation(rule: .danglingTable, tablePhysicalAddress: child, level: next,
                                          inputAddress: addr,
                                          message: "\(pointer) points at PA \(Self.hex(child)), which is \(arena.contains(child) ? "a freed page" : "outside the arena")"))
                continue
            }
            seen[child] = next
            checkTable(child, level: next, base: addr, isRoot: false)
        }
    }
}
