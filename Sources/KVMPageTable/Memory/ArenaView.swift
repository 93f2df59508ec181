/// The allocation state an arena shares with its views.
@usableFromInline
struct ArenaState {
    /// Pages never handed out yet start here.
    @usableFromInline var fresh = 0
    /// Pages that may still be allocated (`Int.max`: unlimited).
    @usableFromInline var budget = Int.max
    /// Pages allocated and freed since the arena was made.
    @usableFromInline var allocated = 0
    @usableFromInline var freed = 0
    /// Head of the free list (a page index, or -1); each free page keeps
    /// the next index in its first word, so reuse is last-in first-out.
    @usableFromInline var freeHead = -1
    /// Pages that must never be freed (the root).
    @usableFromInline var pinned = 0
    @usableFromInline init() {}
}

/// A trivially copyable handle on a ``PageArena``'s memory: what the walker
/// and the operations' visitors use in their inner loops.
///
/// It holds raw pointers only, so copying it costs no reference counting
/// and touching it no exclusivity checks. It is valid while its arena lives;
/// tables keep their arena alive for as long as any operation runs.
public struct ArenaView: TableMemory {
    @usableFromInline let base: UnsafeMutableRawPointer
    @usableFromInline let counts: UnsafeMutablePointer<UInt32>
    @usableFromInline let state: UnsafeMutablePointer<ArenaState>
    @usableFromInline let basePhysicalAddress: UInt64
    @usableFromInline let pageShift: Int
    @usableFromInline let capacity: Int

    @usableFromInline
    init(base: UnsafeMutableRawPointer, counts: UnsafeMutablePointer<UInt32>, state: UnsafeMutablePointer<ArenaState>,
         basePhysicalAddress: UInt64, pageShift: Int, capacity: Int) {
        self.base = base
        self.counts = counts
        self.state = state
        self.basePhysicalAddress = basePhysicalAddress
        self.pageShift = pageShift
        self.capacity = capacity
    }

    /// The table page at `pa`, or nil outside the pages handed out so far.
    @inlinable @inline(__always)
    public func table(at pa: UInt64) -> UnsafeMutablePointer<UInt64>? {
        let offset = pa &- basePhysicalAddress
        guard pa >= basePhysicalAddress, offset >> UInt64(pageShift) < UInt64(state.pointee.fresh) else { return nil }
        return (base + Int(offset)).assumingMemoryBound(to: UInt64.self)
    }

    /// `phys_to_virt` without the range check, for addresses the arena wrote.
    @inlinable @inline(__always)
    func pointer(_ pa: UInt64) -> UnsafeMutablePointer<UInt64> {
        (base + Int(truncatingIfNeeded: pa &- basePhysicalAddress)).assumingMemoryBound(to: UInt64.self)
    }

    /// `virt_to_phys`.
    @inlinable @inline(__always)
    func physicalAddress(of p: UnsafeMutablePointer<UInt64>) -> UInt64 {
        basePhysicalAddress &+ UInt64(UnsafeMutableRawPointer(p) - base)
    }

    @inlinable @inline(__always)
    func pageIndex(of p: UnsafeMutableRawPointer) -> Int { (p - base) &>> pageShift }

    /// `get_page` on the page holding `entry`.
    @inlinable @inline(__always)
    func getPage(holding entry: UnsafeMutablePointer<UInt64>) {
        counts[pageIndex(of: UnsafeMutableRawPointer(entry))] &+= 1
    }

    /// `put_page` on the page holding `entry`; frees it at zero.
    @inlinable @inline(__always)
    func putPage(holding entry: UnsafeMutablePointer<UInt64>) {
        let i = pageIndex(of: UnsafeMutableRawPointer(entry))
        let c = counts[i] &- 1
        counts[i] = c
        if c == 0 { release(i) }
    }

    /// `page_count` of the page holding `entry`.
    @inlinable @inline(__always)
    func pageCount(holding entry: UnsafeMutablePointer<UInt64>) -> Int {
        Int(counts[pageIndex(of: UnsafeMutableRawPointer(entry))])
    }

    /// Remaining budget (`Int.max` when unlimited).
    @inlinable
    var budget: Int { state.pointee.budget }

    /// `zalloc_page`: a zeroed page with count 1, or nil when the budget is
    /// spent or the arena is full.
    @inlinable
    func allocatePage() -> UInt64? {
        guard let i = takePage() else { return nil }
        return basePhysicalAddress &+ (UInt64(i) &<< UInt64(pageShift))
    }

    @usableFromInline
    func takePage() -> Int? {
        let s = state
        guard s.pointee.budget > 0 else { return nil }
        let index: Int
        if s.pointee.freeHead >= 0 {
            index = s.pointee.freeHead
            let page = base + (index << pageShift)
            s.pointee.freeHead = Int(page.load(as: Int64.self))
            page.initializeMemory(as: UInt8.self, repeating: 0, count: 1 << pageShift)
        } else {
            guard s.pointee.fresh < capacity else { return nil }
            index = s.pointee.fresh
            s.pointee.fresh += 1
            // Write before the walker reads: a first read maps the shared
            // zero page and the first write then faults a second time.
            let page = base + (index << pageShift)
            var offset = 0
            while offset < 1 << pageShift {
                page.storeBytes(of: 0, toByteOffset: offset, as: UInt64.self)
                offset += 4096
            }
        }
        if s.pointee.budget != Int.max { s.pointee.budget -= 1 }
        counts[index] = 1
        s.pointee.allocated += 1
        return index
    }

    @usableFromInline
    func release(_ index: Int) {
        precondition(index >= state.pointee.pinned, "kvmpt: a root page's reference count reached zero")
        (base + (index << pageShift)).storeBytes(of: Int64(state.pointee.freeHead), as: Int64.self)
        state.pointee.freeHead = index
        state.pointee.freed += 1
    }
}
