import CKVMPageTable

/// Granule-sized table pages with fake, deterministic physical addresses,
/// the kernel's per-page reference counts and a page budget (the memcache).
///
/// Pages come from one ``PageReservation``: the page at index `i` lives at
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

    @usableFromInline let base: UnsafeMutableRawPointer
    @usableFromInline let counts: UnsafeMutablePointer<UInt32>
    @usableFromInline let pageShift: UInt64
    private let pages: PageReservation
    private let countStore: PageReservation

    /// Pages never handed out yet start here.
    private var fresh = 0
    /// Freed pages, reused last-in first-out (deterministic addresses).
    private var freeList: [Int32] = []
    /// Pages that must never be freed (the root).
    private var pinned = 0

    /// Pages that may still be allocated; nil means unlimited.
    ///
    /// This is the script's `limit_pages`: the memcache from which the
    /// kernel's `zalloc_page` takes pages.
    public var budget: Int?

    /// Pages allocated since the arena was made (root pages included).
    public private(set) var allocatedCount = 0
    /// Pages freed since the arena was made.
    public private(set) var freedCount = 0

    /// The default physical address of page 0.
    public static let defaultBasePhysicalAddress: UInt64 = 0x4000_0000

    /// Pages that are allocated now.
    public var livePages: Int { allocatedCount - freedCount }

    /// Pages ever touched: the image size in pages.
    public var highWaterPages: Int { fresh }

    /// An empty arena able to hold up to `capacity` pages.
    ///
    /// Only the pages used are ever committed, so a generous capacity costs
    /// address space, not memory.
    public init(granule: Granule, capacity: Int? = nil,
                basePhysicalAddress: UInt64 = PageArena.defaultBasePhysicalAddress) throws(KernelError) {
        let pageSize = Int(granule.pageSize)
        // 64 GiB of table pages by default: a 16 Ti-entry table.
        let wanted = capacity ?? ((64 << 30) / pageSize)
        guard let pages = PageReservation(byteCount: wanted * pageSize, minimum: 64 * pageSize),
              let countStore = PageReservation(byteCount: (pages.byteCount / pageSize) * 4, minimum: 64 * 4)
        else { throw .enomem }
        self.granule = granule
        self.pageShift = UInt64(granule.pageShift)
        self.basePhysicalAddress = basePhysicalAddress & ~(granule.pageSize - 1)
        self.capacity = min(pages.byteCount / pageSize, countStore.byteCount / 4)
        self.base = pages.base
        self.counts = countStore.base.bindMemory(to: UInt32.self, capacity: self.capacity)
        self.pages = pages
        self.countStore = countStore
    }

    // MARK: Allocation

    /// Allocates `count` physically contiguous zeroed pages outside the
    /// budget, pinned for the arena's life (the concatenated root,
    /// `zalloc_pages_exact`). Must come before any other allocation.
    public func allocateRoot(pages count: Int) throws(KernelError) -> UInt64 {
        guard fresh == 0, count >= 1, count <= capacity else { throw .einval }
        for i in 0..<count { counts[i] = 1 }
        fresh = count
        pinned = count
        allocatedCount += count
        return basePhysicalAddress
    }

    /// `zalloc_page`: one zeroed page with reference count 1, or nil when
    /// the budget is spent or the arena is full.
    @inlinable
    public func allocatePage() -> UInt64? {
        guard let index = takePage() else { return nil }
        return basePhysicalAddress &+ (UInt64(index) &<< pageShift)
    }

    @usableFromInline
    func takePage() -> Int? {
        if let b = budget {
            guard b > 0 else { return nil }
            budget = b - 1
        }
        let index: Int
        if let reused = freeList.popLast() {
            index = Int(reused)
            (base + (index << Int(pageShift))).initializeMemory(as: UInt8.self, repeating: 0, count: 1 << Int(pageShift))
        } else {
            guard fresh < capacity else {
                if let b = budget { budget = b + 1 }
                return nil
            }
            index = fresh
            fresh += 1
        }
        counts[index] = 1
        allocatedCount += 1
        return index
    }

    private func release(_ index: Int) {
        precondition(index >= pinned, "kvmpt: a root page's reference count reached zero")
        freeList.append(Int32(index))
        freedCount += 1
    }

    // MARK: Addresses

    /// Whether `pa` lies in a page the arena has handed out at some time.
    @inlinable
    public func contains(_ pa: UInt64) -> Bool {
        pa >= basePhysicalAddress && (pa &- basePhysicalAddress) >> pageShift < UInt64(highWaterPagesInline)
    }

    @usableFromInline var highWaterPagesInline: Int { fresh }

    /// `phys_to_virt` for a table page.
    @inlinable
    public func table(at pa: UInt64) -> UnsafeMutablePointer<UInt64>? {
        guard contains(pa) else { return nil }
        return pointer(pa)
    }

    /// `phys_to_virt` without the range check, for addresses the arena wrote.
    @inlinable
    func pointer(_ pa: UInt64) -> UnsafeMutablePointer<UInt64> {
        (base + Int(truncatingIfNeeded: pa &- basePhysicalAddress)).assumingMemoryBound(to: UInt64.self)
    }

    /// `virt_to_phys`.
    @inlinable
    public func physicalAddress(of p: UnsafeMutablePointer<UInt64>) -> UInt64 {
        basePhysicalAddress &+ UInt64(UnsafeMutableRawPointer(p) - base)
    }

    @inlinable
    func pageIndex(of p: UnsafeMutableRawPointer) -> Int {
        (p - base) >> Int(pageShift)
    }

    // MARK: Reference counts

    /// `get_page` on the page that holds `entry`.
    @inlinable
    public func getPage(holding entry: UnsafeMutablePointer<UInt64>) {
        counts[pageIndex(of: UnsafeMutableRawPointer(entry))] &+= 1
    }

    /// `put_page` on the page that holds `entry` (or that starts there):
    /// the page is freed when its count reaches zero.
    @inlinable
    public func putPage(holding entry: UnsafeMutablePointer<UInt64>) {
        let i = pageIndex(of: UnsafeMutableRawPointer(entry))
        let c = counts[i] &- 1
        counts[i] = c
        if c == 0 { pageFreed(i) }
    }

    @usableFromInline
    func pageFreed(_ index: Int) { release(index) }

    /// `page_count` of the page that holds `entry`.
    @inlinable
    public func pageCount(holding entry: UnsafeMutablePointer<UInt64>) -> Int {
        Int(counts[pageIndex(of: UnsafeMutableRawPointer(entry))])
    }

    /// The reference count of the page at `pa` (0 for a free page).
    public func referenceCount(ofPageAt pa: UInt64) -> Int {
        guard contains(pa) else { return 0 }
        return Int(counts[Int((pa &- basePhysicalAddress) >> pageShift)])
    }

    /// Physical addresses of every page allocated now, in address order.
    public func livePageAddresses() -> [UInt64] {
        var free = [Bool](repeating: false, count: fresh)
        for i in freeList { free[Int(i)] = true }
        return (0..<fresh).filter { !free[$0] }.map { basePhysicalAddress + UInt64($0) << pageShift }
    }

    /// Calls `body` with the bytes of every page handed out so far, from
    /// page 0 (free pages included, as zeroes or stale contents).
    public func withImageBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: fresh << Int(pageShift)))
    }
}
