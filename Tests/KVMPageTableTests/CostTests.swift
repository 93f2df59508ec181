import Foundation
import Testing
@testable import KVMPageTable

/// The cost experiment: counts come from the library's operations, and they
/// change with the conditions exactly as the kernel's code would.
@Suite struct CostTests {
    static let ipa: UInt64 = 0x1_0000_0000
    static let pa: UInt64 = 0x8_0000_0000

    static func run(_ c: CostConfiguration, _ mappings: [MappingStrategy] = MappingStrategy.allCases,
                    _ teardowns: [TeardownStrategy] = TeardownStrategy.allCases) throws -> CostResults {
        try CostExperiment(c, mappings: mappings, teardowns: teardowns, runs: 1).run()
    }

    // MARK: The issue's acceptance numbers

    /// 8 GiB, 4K, 40-bit IPA, no FWB/range: the kernel's fixture
    /// `s2-4k-ia40-mmio-8g-page-vs-block` shows 2101256 and 8 per-entry TLBIs.
    @Test func rfc8GiBPageVersusBlock() throws {
        let c = CostConfiguration(ipa: Self.ipa, pa: Self.pa, size: 8 << 30)
        let r = try Self.run(c, [.page, .block], [.perEntry])
        let page = try #require(r.measurement(.page, .perEntry))
        #expect(page.maintenance.tlbiIPA == 2_101_256)
        #expect(page.maintenance.tlbiRange == 0 && page.maintenance.tlbiVMID == 0)
        #expect(page.tablePages == 4104 && page.tablePagesFreed == 4104)
        #expect(page.descriptors == 2_101_256)
        let block = try #require(r.measurement(.block, .perEntry))
        #expect(block.maintenance.tlbiIPA == 8)
        #expect(block.tablePages == 0)
        #expect(r.layout(.block)?.leafCounts == [1 << 30: 8])
        #expect(r.layout(.page)?.leafCounts == [4096: 2_097_152])
    }

    @Test func vmWideIssuesOneVMIDInvalidationOnly() throws {
        let c = CostConfiguration(ipa: Self.ipa, pa: Self.pa, size: 8 << 30)
        let r = try Self.run(c, [.block, .fault], [.vmWide])
        for m in r.measurements {
            #expect(m.maintenance.tlbiIPA == 0)
            #expect(m.maintenance.tlbiRange == 0)
            #expect(m.maintenance.tlbiVMID == 1)
        }
        // Page by page too, on a smaller region: every table page is freed.
        let small = try Self.run(CostConfiguration(ipa: Self.ipa, pa: Self.pa, size: 64 << 20), [.page], [.vmWide])
        let m = try #require(small.measurement(.page, .vmWide))
        #expect(m.maintenance.tlbiIPA == 0 && m.maintenance.tlbiVMID == 1)
        #expect(m.tablePages == 33 && m.tablePagesFreed == 33)
    }

    // MARK: Conditions

    @Test func misalignedPAGivesNoBlocks() throws {
        let c = CostConfiguration(ipa: Self.ipa, pa: Self.pa + 0x1000, size: 64 << 20)
        let r = try Self.run(c, MappingStrategy.allCases, [.perEntry])
        for mapping in MappingStrategy.allCases {
            #expect(r.layout(mapping)?.leafCounts == [4096: 16384], "\(mapping)")
        }
        let page = try #require(r.measurement(.page, .perEntry))
        let block = try #require(r.measurement(.block, .perEntry))
        let fault = try #require(r.measurement(.fault, .perEntry))
        #expect(block.maintenance.tlbiIPA == page.maintenance.tlbiIPA)
        #expect(page.maintenance.tlbiIPA == 16384 + 32 + 1)
        #expect(fault.faults == 16384)

        // Aligned, the same region is two dozen blocks.
        let aligned = try Self.run(CostConfiguration(ipa: Self.ipa, pa: Self.pa, size: 64 << 20), [.block, .fault], [.perEntry])
        #expect(aligned.layout(.block)?.leafCounts == [2 << 20: 32])
        #expect(aligned.measurement(.block, .perEntry)?.maintenance.tlbiIPA == 33)
        #expect(aligned.measurement(.fault, .perEntry)?.faults == 32)
    }

    @Test func granule64KUses512MiBBlocks() throws {
        let c = CostConfiguration(granule: .size64K, iaBits: 42, ipa: Self.ipa, pa: Self.pa, size: 8 << 30)
        let r = try Self.run(c, [.block, .fault], [.perEntry])
        #expect(r.layout(.block)?.leafCounts == [512 << 20: 16])
        #expect(r.layout(.fault)?.leafCounts == [512 << 20: 16])
        #expect(r.measurement(.block, .perEntry)?.maintenance.tlbiIPA == 16)
        #expect(r.measurement(.fault, .perEntry)?.faults == 16)
    }

    @Test func fwbAndTLBIRangeGiveRangeInvalidations() throws {
        let size: UInt64 = 2 << 30
        let plain = try Self.run(CostConfiguration(ipa: Self.ipa, pa: Self.pa, size: size), [.page, .block], [.perEntry])
        let both = try Self.run(CostConfiguration(features: [.fwb, .tlbiRange], ipa: Self.ipa, pa: Self.pa, size: size),
                                [.page, .block], [.perEntry])
        let p0 = try #require(plain.measurement(.page, .perEntry)).maintenance
        let p1 = try #require(both.measurement(.page, .perEntry)).maintenance
        #expect(p0.tlbiRange == 0 && p0.tlbiIPA == 2 * (262_144 + 512 + 1))
        // Leaves are deferred to one range TLBI per 1 GiB chunk of
        // unmap_stage2_range; freed tables are still invalidated one by one.
        #expect(p1.tlbiRange == 2)
        #expect(p1.tlbiIPA == 2 * (512 + 1))
        let b1 = try #require(both.measurement(.block, .perEntry)).maintenance
        #expect(b1.tlbiIPA == 0 && b1.tlbiRange == 2)
        // Only one of the two features: nothing is deferred.
        let fwbOnly = try Self.run(CostConfiguration(features: [.fwb], ipa: Self.ipa, pa: Self.pa, size: size), [.block], [.perEntry])
        #expect(fwbOnly.measurement(.block, .perEntry)?.maintenance.tlbiRange == 0)
    }

    @Test func rangeTeardownRunsWithTheFeaturesItNeeds() throws {
        let r = try Self.run(CostConfiguration(ipa: Self.ipa, pa: Self.pa, size: 64 << 20), [.page], [.perEntry, .range])
        let perEntry = try #require(r.measurement(.page, .perEntry))
        let range = try #require(r.measurement(.page, .range))
        #expect(perEntry.features.isEmpty)
        #expect(range.features == [.fwb, .tlbiRange])
        #expect(range.maintenance.tlbiRange == 1)
        #expect(range.maintenance.tlbiIPA == 33)
    }

    // MARK: The fault path

    @Test func faultBlockSizeFollowsUserspaceAddress() throws {
        let ipa: UInt64 = 0x4000_0000, pa: UInt64 = 0x8000_0000, size: UInt64 = 2 << 30
        // Congruent by default: PUD blocks.
        var r = try Self.run(CostConfiguration(ipa: ipa, pa: pa, size: size), [.fault], [.perEntry])
        #expect(r.layout(.fault)?.leafCounts == [1 << 30: 2])
        // hva congruent with PA and IPA modulo 2 MiB only: PMD blocks.
        r = try Self.run(CostConfiguration(ipa: ipa, pa: pa, size: size, hva: pa + (2 << 20)), [.fault], [.perEntry])
        #expect(r.layout(.fault)?.leafCounts == [2 << 20: 1024])
        #expect(r.measurement(.fault, .perEntry)?.faults == 1024)
        // Not congruent modulo 2 MiB: pages.
        r = try Self.run(CostConfiguration(ipa: ipa, pa: pa, size: 64 << 20, hva: pa + 0x1000), [.fault], [.perEntry])
        #expect(r.layout(.fault)?.leafCounts == [4096: 16384])
    }

    @Test func faultMapsPagesAtTheRegionEdges() throws {
        // 2 MiB-congruent but not aligned: pages up to the first 2 MiB
        // boundary, blocks, pages after the last.
        let ipa: UInt64 = 0x4010_0000, pa: UInt64 = 0x8010_0000
        let r = try Self.run(CostConfiguration(ipa: ipa, pa: pa, size: 8 << 20), [.block, .fault], [.perEntry])
        let expected: [UInt64: Int] = [4096: 512, 2 << 20: 3]
        #expect(r.layout(.fault)?.leafCounts == expected)
        #expect(r.layout(.block)?.leafCounts == expected)
        let runs = try #require(r.layout(.fault)?.runs)
        #expect(runs.map(\.leafSize) == [4096, 2 << 20, 4096])
        #expect(runs.first?.start == ipa && runs.last?.end == ipa + (8 << 20))
    }

    @Test func faultSizeFunctionMatchesKernelRules() {
        let f = CostExperiment.faultMappingSize
        // PUD needs the whole 1 GiB inside the region.
        #expect(f(.size4K, 0x4000_0000, 0x4000_0000, 0x4000_0000, 0x6000_0000, 0x4000_0000) == 1 << 30)
        #expect(f(.size4K, 0x4000_0000, 0x4000_0000, 0x4000_0000, 0x6000_0000, 0x8000_0000) == 2 << 20)
        // IPA not congruent with the hva: no blocks at all.
        #expect(f(.size4K, 0x4000_1000, 0x4000_0000, 0x4000_0000, 0x6000_0000, 0x4000_0000) == 4096)
        // 16K: PMD is 32 MiB.
        #expect(f(.size16K, 0x4000_0000, 0x4000_0000, 0x4000_0000, 0x4000_0000, 0x4000_0000) == 32 << 20)
    }

    @Test func faultTopsUpTheMemcache() throws {
        // 4K, 40-bit IPA: three levels, so each fault needs two pages in the cache.
        var c = CostConfiguration(ipa: Self.ipa, pa: Self.pa + 0x1000, size: 4 << 20, memcachePages: 1)
        #expect(throws: CostError.self) { try Self.run(c, [.fault], [.perEntry]) }
        // The budget is what the allocator can still give: every fault
        // needs two pages obtainable, even when it allocates none. The
        // region needs 3 table pages (one L2, two L3), the last one at the
        // 513th fault, after which two more must still be obtainable.
        c.memcachePages = 4
        #expect(throws: CostError.self) { try Self.run(c, [.fault], [.perEntry]) }
        c.memcachePages = 5
        let r = try Self.run(c, [.fault], [.perEntry])
        #expect(r.measurement(.fault, .perEntry)?.tablePages == 3)
        #expect(r.measurement(.fault, .perEntry)?.faults == 1024)
    }

    // MARK: Destroy

    @Test func destroyFreesEveryTablePageWithOneVMIDInvalidation() throws {
        let g = try TableGeometry.stage2(granule: .size4K, iaBits: 40, lpa2: false)
        let t = try Stage2PageTable(geometry: g)
        try t.map(0x4000_0000, size: 1 << 30, to: 0x8000_0000, prot: .readWrite)          // an L1 block in the root
        try t.map(0x8000_0000, size: 4 << 20, to: 0x1_0000_0000, prot: .readWrite)        // L2 blocks
        try t.map(0x9000_0000, size: 0x3000, to: 0x1_4000_0000, prot: [.device, .read])   // pages
        let allocated = t.maintenance.pagesAllocated
        #expect(allocated == 2)
        let livePages = t.arena.livePages
        t.destroy()
        let m = t.lastMaintenance
        #expect(m.pagesFreed == allocated && m.pagesAllocated == 0)
        #expect(m.tlbiVMID == 1 && m.tlbiIPA == 0 && m.tlbiRange == 0)
        #expect(m.dcacheBytes == 0 && m.icacheBytes == 0)
        #expect(t.arena.livePages == livePages - allocated)
        // Empty again, and usable.
        let empty = MappingLayout(of: t, start: 0, size: 1 << 40)
        #expect(empty.descriptors == 0)
        try t.map(0x4000_0000, size: 0x1000, to: 0x8000_0000, prot: .readWrite)
        #expect(t.lastMaintenance.pagesAllocated == 2)
        t.destroy()
        #expect(t.lastMaintenance.pagesFreed == 2)
    }

    // MARK: Latency model

    @Test func modelledTimeIsCountsTimesLatencies() throws {
        let model = try LatencyModel(parsing: "tlbi=1us, tlbi-range=2us,tlbi-vmid=3000ns,dsb=0.01ms,fault=5,cmo-per-page=1e-6s")
        func near(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= 1e-12 * max(abs(a), abs(b)) }
        #expect(near(model.tlbi, 1e-6) && near(model.tlbiRange, 2e-6) && near(model.tlbiVMID, 3e-6))
        #expect(near(model.dsb, 1e-5) && near(model.fault, 5e-6) && near(model.cmoPerPage, 1e-6))
        var m = Maintenance()
        m.tlbiIPA = 10; m.tlbiRange = 2; m.tlbiVMID = 1; m.dcacheBytes = 8192; m.icacheBytes = 4096
        let expected = 10 * (1e-6 + 2e-5) + 2 * (2e-6 + 2e-5) + 1 * (3e-6 + 1e-5) + 4 * 5e-6 + 3 * 1e-6
        #expect(abs(model.seconds(for: m, faults: 4) - expected) < 1e-12)
        #expect(throws: CostError.self) { try LatencyModel(parsing: "tlb=1us") }
        #expect(throws: CostError.self) { try LatencyModel(parsing: "tlbi=fast") }
        #expect(throws: CostError.self) { try LatencyModel(parsing: "tlbi") }
    }

    @Test func calibrationScalesPagePerEntryToTheGivenTime() throws {
        let r = try Self.run(CostConfiguration(ipa: Self.ipa, pa: Self.pa, size: 64 << 20), [.page, .block], [.perEntry, .vmWide])
        let report = try CostReport(r, calibrateTo: 1800)
        let page = try #require(report.row(.page, .perEntry))
        #expect(abs(page.modelledSeconds - 1800) < 1e-6)
        let ratio = report.latency.tlbi / LatencyModel.default.tlbi
        #expect(abs(report.latency.dsb / LatencyModel.default.dsb - ratio) < 1e-9)
        let block = try #require(report.row(.block, .perEntry))
        #expect(block.modelledSeconds < page.modelledSeconds / 100)
        #expect(throws: CostError.self) { try CostReport(r, calibrateTo: 0) }
        let noPage = try Self.run(CostConfiguration(ipa: Self.ipa, pa: Self.pa, size: 2 << 20), [.block], [.perEntry])
        #expect(throws: CostError.self) { try CostReport(noPage, calibrateTo: 10) }
    }

    // MARK: Output

    @Test func jsonHasExactlyTheIssuesKeys() throws {
        let r = try Self.run(CostConfiguration(ipa: Self.ipa, pa: Self.pa, size: 16 << 20))
        let report = try CostReport(r)
        let data = Data(report.json().utf8)
        let array = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        #expect(array.count == 9)
        let keys: Set<String> = ["mapping", "teardown", "descriptors", "tablePages", "faults", "tlbiIPA", "tlbiRange",
                                 "tlbiVMID", "dcacheBytes", "icacheBytes", "measuredSeconds", "modelledSeconds"]
        for (object, row) in zip(array, report.rows) {
            #expect(Set(object.keys) == keys)
            #expect(object["mapping"] as? String == row.mapping.rawValue)
            #expect(object["teardown"] as? String == row.teardown.rawValue)
            #expect((object["tlbiIPA"] as? NSNumber)?.intValue == row.maintenance.tlbiIPA)
            #expect((object["tlbiVMID"] as? NSNumber)?.intValue == row.maintenance.tlbiVMID)
            #expect((object["descriptors"] as? NSNumber)?.intValue == row.measurement.descriptors)
            let modelled = try #require((object["modelledSeconds"] as? NSNumber)?.doubleValue)
            #expect(abs(modelled - row.modelledSeconds) <= 1e-12 * row.modelledSeconds)
        }
    }

    @Test func tableNamesEveryCombination() throws {
        let r = try Self.run(CostConfiguration(ipa: Self.ipa, pa: Self.pa, size: 16 << 20))
        let text = try CostReport(r).table()
        for mapping in MappingStrategy.allCases {
            for teardown in TeardownStrategy.allCases {
                #expect(text.contains("\(mapping.rawValue)") && text.contains(teardown.rawValue))
            }
        }
        #expect(text.contains("2M x 8"))
        #expect(text.contains("granule=4K ia_bits=40 start_level=1 root_pages=2"))
    }

    @Test func refusesRegionsTheTableCannotHold() {
        let bad = [
            CostConfiguration(ipa: 0x1000_0800, pa: Self.pa, size: 1 << 20),
            CostConfiguration(ipa: Self.ipa, pa: Self.pa, size: 0),
            CostConfiguration(ipa: (1 << 40) - (1 << 20), pa: Self.pa, size: 2 << 20),
            CostConfiguration(ipa: Self.ipa, pa: (1 << 48) - 4096, size: 8192),
            CostConfiguration(granule: .size64K, ipa: Self.ipa, pa: Self.pa + 0x1000, size: 1 << 20),
            CostConfiguration(iaBits: 56, ipa: Self.ipa, pa: Self.pa, size: 1 << 20),
        ]
        for c in bad {
            #expect(throws: CostError.self) { try c.validate() }
        }
        #expect(CostConfiguration.parseNumber("8G") == 8 << 30)
        #expect(CostConfiguration.parseNumber("0x800000000") == 0x8_0000_0000)
        #expect(CostConfiguration.parseNumber("eight") == nil)
    }
}
