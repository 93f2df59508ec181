import Testing
@testable import KVMPageTable

/// Records every visit.
struct Recorder: Visitor {
    var flags: WalkFlags
    var visits: [(Visit, Int8, UInt64)] = []
    var stopAt: UInt64? = nil
    var stopCode: Int32 = KernelError.einval.code
    mutating func visit(_ ctx: inout VisitContext, _ visit: Visit) -> Int32 {
        visits.append((visit, ctx.level.rawValue, ctx.addr))
        if let stopAt, ctx.addr == stopAt, visit == .leaf { return stopCode }
        return 0
    }
}

@Suite struct WalkerTests {
    func table() throws -> Stage2PageTable {
        let t = try Stage2PageTable(geometry: .stage2(granule: .size4K, iaBits: 40, lpa2: false))
        try t.map(0x4000_0000, size: 0x2000, to: 0x8000_0000, prot: .readWrite)
        return t
    }

    @Test func visitsInDepthFirstOrderWithPreAndPost() throws {
        let t = try table()
        var r = Recorder(flags: [.leaf, .tablePre, .tablePost])
        #expect(t.walker.walk(0x4000_0000, size: 0x3000, visitor: &r) == 0)
        let got = r.visits.map { "\($0.0) L\($0.1) \(Hex.short($0.2))" }
        #expect(got == [
            "tablePre L1 0x40000000",
            "tablePre L2 0x40000000",
            "leaf L3 0x40000000",
            "leaf L3 0x40001000",
            "leaf L3 0x40002000",   // empty entries are leaf visits too
            "tablePost L2 0x40000000",
            "tablePost L1 0x40000000",
        ])
    }

    @Test func emptyEntriesAreVisitedAtTheLevelMet() throws {
        let t = try table()
        var r = Recorder(flags: .leaf)
        #expect(t.walker.walk(0x8000_0000, size: 0x1000, visitor: &r) == 0)
        #expect(r.visits.count == 1)
        #expect(r.visits[0].1 == 1)
    }

    @Test func errorStopsTheWalk() throws {
        let t = try table()
        var r = Recorder(flags: .leaf, stopAt: 0x4000_1000)
        #expect(t.walker.walk(0x4000_0000, size: 0x10000, visitor: &r) == KernelError.einval.code)
        #expect(r.visits.map(\.2) == [0x4000_0000, 0x4000_1000])
    }

    @Test func eagainStopsOnlyFaultWalks() throws {
        let t = try table()
        var r = Recorder(flags: .leaf, stopAt: 0x4000_1000, stopCode: KernelError.eagain.code)
        #expect(t.walker.walk(0x4000_0000, size: 0x3000, visitor: &r) == 0)
        #expect(r.visits.count == 3)
        var f = Recorder(flags: [.leaf, .handleFault], stopAt: 0x4000_1000, stopCode: KernelError.eagain.code)
        #expect(t.walker.walk(0x4000_0000, size: 0x3000, visitor: &f) == KernelError.eagain.code)
        #expect(f.visits.count == 2)
    }

    @Test func rangeBeyondInputSpaceIsERANGE() throws {
        let t = try table()
        var r = Recorder(flags: .leaf)
        #expect(t.walker.walk(1 << 40, size: 0x1000, visitor: &r) == KernelError.erange.code)
        #expect(t.walker.walk((1 << 40) - 0x1000, size: 0x2000, visitor: &r) == KernelError.erange.code)
        #expect(r.visits.isEmpty)
        // A size that wraps the end below the start walks nothing, as in C.
        #expect(t.walker.walk(0x1000, size: ~0 - 0xfff, visitor: &r) == 0)
        #expect(r.visits.isEmpty)
    }

    /// The kernel aligns the start down and only then adds the size, so an
    /// offset inside the first page does not stretch the range.
    @Test func pageOffsetIsDroppedBeforeTheSizeIsAdded() throws {
        let t = try table()
        var r = Recorder(flags: .leaf)
        #expect(t.walker.walk(0x4000_0fff, size: 2, visitor: &r) == 0)
        #expect(r.visits.map(\.2) == [0x4000_0000])
        r.visits = []
        #expect(t.walker.walk(0x4000_0fff, size: 0x1001, visitor: &r) == 0)
        #expect(r.visits.map(\.2) == [0x4000_0000, 0x4000_1000])
    }

    @Test func aVisitorInstallingATableIsWalkedIntoIt() throws {
        // A map over a block installs a table in the leaf visit; the reload
        // walks into it and maps the page there.
        let t = try Stage2PageTable(geometry: .stage2(granule: .size4K, iaBits: 40, lpa2: false))
        try t.map(0x4000_0000, size: 0x20_0000, to: 0x8000_0000, prot: .readWrite)
        try t.map(0x4012_3000, size: 0x1000, to: 0x9000_0000, prot: .read)
        let (level, d) = try t.leaf(at: 0x4012_3000)
        #expect(level == .last)
        #expect(t.format.physical(fromPTE: d.rawValue) == 0x9000_0000)
        #expect(t.lastMaintenance.tlbiIPA == 1)
        #expect(t.lastMaintenance.pagesAllocated == 1)
    }
}

@Suite struct ArenaTests {
    @Test(arguments: Granule.allCases)
    func pagesAreGranuleAligned(_ granule: Granule) throws {
        let arena = try PageArena(granule: granule, capacity: 128)
        let root = try arena.allocateRoot(pages: 2)
        for _ in 0..<5 {
            let pa = try #require(arena.allocatePage())
            let p = try #require(arena.table(at: pa))
            #expect(UInt(bitPattern: p) % UInt(granule.pageSize) == 0)
            #expect(pa % granule.pageSize == 0)
        }
        #expect(root == arena.basePhysicalAddress)
    }

    @Test func refcountsBudgetAndReuse() throws {
        let arena = try PageArena(granule: .size4K, capacity: 16)
        _ = try arena.allocateRoot(pages: 1)
        arena.budget = 2
        let a = try #require(arena.allocatePage())
        let b = try #require(arena.allocatePage())
        #expect(arena.allocatePage() == nil)       // budget spent
        #expect(arena.budget == 0)
        let pa = try #require(arena.table(at: a))
        pa[3] = 0xdead
        arena.getPage(holding: pa + 3)
        #expect(arena.referenceCount(ofPageAt: a) == 2)
        arena.putPage(holding: pa + 3)
        arena.putPage(holding: pa)                  // count 0: freed
        #expect(arena.freedCount == 1)
        #expect(Set(arena.livePageAddresses()) == [arena.basePhysicalAddress, b])
        arena.budget = nil
        let c = try #require(arena.allocatePage())
        #expect(c == a)                             // reused, last in first out
        #expect(try #require(arena.table(at: c))[3] == 0)  // and zeroed
        #expect(arena.table(at: arena.basePhysicalAddress + 16 * 4096) == nil)
    }
}
