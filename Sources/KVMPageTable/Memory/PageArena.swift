/// Granule-sized table pages with fake, deterministic physical addresses,
/// the kernel's per-page reference counts and a page budget (the memcache).
///
/// Pages come from one reserved span of address space: the page at index `i` lives at
/// `base + i * granule` and has physical address `basePhysicalAddress + i *
/// granule`, so translation either way is an addition. Reference counts
/// follow the kernel: a table page holds 1 plus one per non-zero entry, and
/// the page is freed when its count drops to zero.
public final class PageArena: TableMemory {
    /// The granule every page has.
    public let granule: Granule
    /// The physical address of page 0.
    public let basePhysicalAddress: UInt64
    /// Pages the arena can ever hold.
    public let capacity: Int
    /// The raw handle the walker and the operations use.
    public let view: ArenaView

    private let pages: PageReservation
    private let countStore: PageReservation
    private let state: UnsafeMutablePointer<ArenaState>

    /// The default physical address of page 0.
    public static let defaultBasePhysicalAddress: UInt64 = 0x4000_0000

    /// An empty arena able to hold up to `capacity` pages.
    ///
    /// Only the pages used are ever committed, so a generous capacity costs
    /// address space, not memory.
    public init(granule: Granule, capacity: Int? = nil,
                basePhysicalAddress: UInt64 = PageArena.defaultBasePhysicalAddress) throws(KernelError) {
        let pageSize = Int(granule.pageSize)
        // 64 GiB of table pages by default.
        let wanted = capacity ?? ((64 << 30) / pageSize)
        guard wanted >= 1,
              let pages = PageReservation(byteCount: wanted * pageSize, minimum: min(wanted, 64) * pageSize,
                                          alignment: pageSize),
              let countStore = PageReservation(byteCount: (pages.byteCount / pageSize) * 4, minimum: 4)
        else { throw .enomem }
        self.granule = granule
        self.basePhysicalAddress = basePhysicalAddress & ~(granule.pageSize - 1)
        let capacity = min(pages.byteCount / pageSize, countStore.byteCount / 4)
        self.capacity = capacity
        let pageBase = pages.base
        let counts = countStore.base.bindMemory(to: UInt32.self, capacity: capacity)
        self.pages = pages
        self.countStore = countStore
        self.state = .allocate(capacity: 1)
        self.state.initialize(to: ArenaState())
        self.view = ArenaView(base: pageBase,
                              counts: counts,
                              state: state, basePhysicalAddress: self.basePhysicalAddress,
                              pageShift: Int(granule.pageShift), capacity: self.capacity)
    }

    /// `arena` when given, else a new arena for `granule` (a table's default).
    static func existingOrNew(_ arena: PageArena?, granule: Granule) throws(KernelError) -> PageArena {
        if let arena { return arena }
        return try PageArena(granule: granule)
    }

    deinit {
        state.deinitialize(count: 1)
        state.deallocate()
    }

    /// Pages that may still be allocated; nil means unlimited.
    ///
    /// This is the script's `limit_pages`: the memcache from which the
    /// kernel's `zalloc_page` takes pages.
    public var budget: Int? {
        get { state.pointee.budget == Int.max ? nil : state.pointee.budget }
        set { state.pointee.budget = min(max(newValue ?? Int.max, 0), Int.max) }
    }

    /// Pages allocated since the arena was made (root pages included).
    public var allocatedCount: Int { state.pointee.allocated }
    /// Pages freed since the arena was made.
    public var freedCount: Int { state.pointee.freed }
    /// Pages that are allocated now.
    public var livePages: Int { allocatedCount - freedCount }
    /// Pages ever touched: the image size in pages.
    public var highWaterPages: Int { state.pointee.fresh }

    /// Allocates `count` physically contiguous zeroed pages outside the
    /// budget, pinned for the arena's life (the concatenated root,
    /// `zalloc_pages_exact`). Must come before any other allocation.
    public func allocateRoot(pages count: Int) throws(KernelError) -> UInt64 {
        guard state.pointee.fresh == 0, count >= 1, count <= capacity else { throw .einval }
        for i in 0..<count { view.counts[i] = 1 }
        state.pointee.fresh = count
        state.pointee.pinned = count
        state.pointee.allocated += count
        return basePhysicalAddress
    }

    /// `zalloc_page`: one zeroed page with reference count 1, or nil when
    /// the budget is spent or the arena is full.
    public func allocatePage() -> UInt64? { view.allocatePage() }

    /// Whether `pa` lies in a page the arena has handed out at some time.
    public func contains(_ pa: UInt64) -> Bool { view.table(at: pa) != nil }

    /// `phys_to_virt` for a table page, nil outside the pages handed out.
    @inlinable
    public func table(at pa: UInt64) -> UnsafeMutablePointer<UInt64>? { view.table(at: pa) }

    /// `virt_to_phys`.
    public func physicalAddress(of p: UnsafeMutablePointer<UInt64>) -> UInt64 { view.physicalAddress(of: p) }

    /// `get_page` on the page that holds `entry`.
    public func getPage(holding entry: UnsafeMutablePointer<UInt64>) { view.getPage(holding: entry) }

    /// `put_page` on the page that holds `entry`: freed when the count hits zero.
    public func putPage(holding entry: UnsafeMutablePointer<UInt64>) { view.putPage(holding: entry) }

    /// `page_count` of the page that holds `entry`.
    public func pageCount(holding entry: UnsafeMutablePointer<UInt64>) -> Int { view.pageCount(holding: entry) }

    /// The reference count of the page at `pa` (0 for a free page).
    public func referenceCount(ofPageAt pa: UInt64) -> Int {
        guard let p = view.table(at: pa) else { return 0 }
        return view.pageCount(holding: p)
    }

    /// Physical addresses of every page allocated now, in address order.
    public func livePageAddresses() -> [UInt64] {
        let fresh = state.pointee.fresh
        var free = [Bool](repeating: false, count: fresh)
        var i = state.pointee.freeHead
        while i >= 0 {
            free[i] = true
            i = Int((view.base + (i << view.pageShift)).load(as: Int64.self))
        }
        return (0..<fresh).filter { !free[$0] }.map { basePhysicalAddress + UInt64($0) << UInt64(view.pageShift) }
    }

    /// Calls `body` with the bytes of every page handed out so far, from
    /// page 0 (free pages included: their first word links the free list).
    public func withImageBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: view.base, count: state.pointee.fresh << view.pageShift))
    }
}
