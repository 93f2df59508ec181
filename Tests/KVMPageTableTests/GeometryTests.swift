import Testing
@testable import KVMPageTable

@Suite struct GeometryTests {
    struct Expected: Sendable, CustomStringConvertible {
        let granule: Granule, bits: Int, lpa2: Bool, start: Int8, roots: Int
        var description: String { "\(granule) ia\(bits)\(lpa2 ? " lpa2" : "")" }
    }

    /// Stage-2 start levels and concatenated roots, worked out by hand from
    /// kvm_get_vtcr (levels = max(2, (ia - 8) / (PAGE_SHIFT - 3))) and
    /// kvm_pgd_pages; the starred rows are confirmed by kernel fixtures.
    static let stage2: [Expected] = [
        Expected(granule: .size4K, bits: 32, lpa2: false, start: 2, roots: 4),    // *
        Expected(granule: .size4K, bits: 36, lpa2: false, start: 1, roots: 1),    // *
        Expected(granule: .size4K, bits: 39, lpa2: false, start: 1, roots: 1),
        Expected(granule: .size4K, bits: 40, lpa2: false, start: 1, roots: 2),    // *
        Expected(granule: .size4K, bits: 42, lpa2: false, start: 1, roots: 8),    // *
        Expected(granule: .size4K, bits: 43, lpa2: false, start: 1, roots: 16),
        Expected(granule: .size4K, bits: 44, lpa2: false, start: 0, roots: 1),    // *
        Expected(granule: .size4K, bits: 48, lpa2: false, start: 0, roots: 1),    // *
        Expected(granule: .size4K, bits: 52, lpa2: true, start: 0, roots: 16),    // *
        Expected(granule: .size16K, bits: 36, lpa2: false, start: 2, roots: 1),   // *
        Expected(granule: .size16K, bits: 40, lpa2: false, start: 2, roots: 16),  // *
        Expected(granule: .size16K, bits: 42, lpa2: false, start: 1, roots: 1),
        Expected(granule: .size16K, bits: 48, lpa2: false, start: 1, roots: 2),   // *
        Expected(granule: .size16K, bits: 52, lpa2: true, start: 0, roots: 1),    // *
        Expected(granule: .size64K, bits: 32, lpa2: false, start: 2, roots: 1),
        Expected(granule: .size64K, bits: 40, lpa2: false, start: 2, roots: 1),   // *
        Expected(granule: .size64K, bits: 42, lpa2: false, start: 2, roots: 1),   // *
        Expected(granule: .size64K, bits: 44, lpa2: false, start: 2, roots: 4),   // *
        Expected(granule: .size64K, bits: 46, lpa2: false, start: 2, roots: 16),
        Expected(granule: .size64K, bits: 47, lpa2: false, start: 1, roots: 1),
        Expected(granule: .size64K, bits: 52, lpa2: false, start: 1, roots: 1),   // *
    ]

    @Test("stage-2 geometry", arguments: stage2)
    func stage2Geometry(_ e: Expected) throws {
        let g = try TableGeometry.stage2(granule: e.granule, iaBits: e.bits, lpa2: e.lpa2)
        #expect(g.startLevel == Level(e.start))
        #expect(g.rootPages == e.roots)
        // The root must cover exactly the input space.
        let perRoot = UInt64(e.granule.entriesPerTable) * e.granule.size(at: g.startLevel)
        #expect(UInt64(g.rootPages) * perRoot >= g.inputLimit)
        #expect(UInt64(g.rootPages - 1) * perRoot < g.inputLimit)
    }

    @Test func everyAcceptedStage2ConfigurationCoversItsSpace() throws {
        for granule in Granule.allCases {
            for lpa2 in [false, true] where !(lpa2 && granule == .size64K) {
                for bits in 32...TableGeometry.maximumInputBits(granule: granule, lpa2: lpa2) {
                    let g = try TableGeometry.stage2(granule: granule, iaBits: bits, lpa2: lpa2)
                    #expect(g.levels >= 2)
                    #expect((1...16).contains(g.rootPages), "\(granule) ia\(bits)")
                    let perRoot = UInt64(granule.entriesPerTable) * granule.size(at: g.startLevel)
                    #expect(UInt64(g.rootPages) * perRoot >= g.inputLimit)
                    #expect(g.rootPageIndex(of: g.inputLimit - 1) == g.rootPages - 1)
                }
            }
        }
    }

    @Test func hypStartLevels() throws {
        #expect(try TableGeometry.hyp(granule: .size4K, vaBits: 48, lpa2: false).startLevel == Level(0))
        #expect(try TableGeometry.hyp(granule: .size4K, vaBits: 39, lpa2: false).startLevel == Level(1))
        #expect(try TableGeometry.hyp(granule: .size4K, vaBits: 52, lpa2: true).startLevel == Level(-1))
        #expect(try TableGeometry.hyp(granule: .size16K, vaBits: 48, lpa2: false).startLevel == Level(0))
        #expect(try TableGeometry.hyp(granule: .size64K, vaBits: 52, lpa2: false).startLevel == Level(1))
        #expect(try TableGeometry.hyp(granule: .size64K, vaBits: 42, lpa2: false).startLevel == Level(2))
        #expect(try TableGeometry.hyp(granule: .size4K, vaBits: 48, lpa2: false).rootPages == 1)
    }

    @Test func refusedConfigurations() {
        #expect(throws: TableGeometry.Refusal.self) { try TableGeometry.stage2(granule: .size4K, iaBits: 52, lpa2: false) }
        #expect(throws: TableGeometry.Refusal.self) { try TableGeometry.stage2(granule: .size4K, iaBits: 31, lpa2: false) }
        #expect(throws: TableGeometry.Refusal.self) { try TableGeometry.stage2(granule: .size64K, iaBits: 48, lpa2: true) }
        #expect(throws: TableGeometry.Refusal.self) { try TableGeometry.hyp(granule: .size16K, vaBits: 53, lpa2: true) }
        #expect(throws: Never.self) { try TableGeometry.stage2(granule: .size64K, iaBits: 52, lpa2: false) }
    }
}
