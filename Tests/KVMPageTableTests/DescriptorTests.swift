import CKVMPageTable
import Testing
@testable import KVMPageTable

@Suite struct DescriptorTests {
    struct Case: Sendable, CustomStringConvertible {
        let granule: Granule, lpa2: Bool, pa: UInt64, pte: UInt64
        var description: String { "\(granule) lpa2=\(lpa2) pa=\(Hex.short(pa))" }
    }

    /// Output-address encodings, taken from kernel fixtures.
    static let cases: [Case] = [
        Case(granule: .size4K, lpa2: false, pa: 0x8_8000_0000, pte: 0x0000_0008_8000_0000),
        Case(granule: .size16K, lpa2: false, pa: 0x10_1200_0000, pte: 0x0000_0010_1200_0000),
        // 64K: PA[51:48] goes to descriptor bits [15:12] (s2-64k-ia48-ia52-pa52).
        Case(granule: .size64K, lpa2: false, pa: 0xf_ffff_ffff_0000, pte: 0x0000_ffff_ffff_f000),
        Case(granule: .size64K, lpa2: false, pa: 0xc_0000_2000_0000, pte: 0x0000_0000_2000_c000),
        // LPA2: PA[51:50] goes to bits [9:8] (s2-4k-ia52-lpa2).
        Case(granule: .size4K, lpa2: true, pa: 0xf_ffff_c000_0000, pte: 0x0003_ffff_c000_0300),
        Case(granule: .size4K, lpa2: true, pa: 0x4_0000_0000_1000, pte: 0x0000_0000_0000_1100),
        Case(granule: .size16K, lpa2: true, pa: 0xc_0000_0200_0000, pte: 0x0000_0000_0200_0300),
    ]

    @Test("phys <-> pte", arguments: cases)
    func outputAddressRoundTrips(_ c: Case) {
        let f = DescriptorFormat(granule: c.granule, lpa2: c.lpa2)
        #expect(f.pte(fromPhysical: c.pa) == c.pte)
        #expect(f.physical(fromPTE: c.pte | 0x0ff) == c.pa)  // attribute bits outside OA[51:50]
        #expect(c.pte & ~f.addressMask == 0)
    }

    @Test func lpa2IsIgnoredFor64K() {
        let f = DescriptorFormat(granule: .size64K, lpa2: true)
        #expect(!f.lpa2)
        #expect(f.outputAddressBits == 52)
        #expect(DescriptorFormat(granule: .size4K, lpa2: false).outputAddressBits == 48)
    }

    @Test func tableAndLeafDependOnLevel() {
        let d = Descriptor(0x3003)
        #expect(d.isTable(at: Level(2)))
        #expect(!d.isTable(at: .last))       // at level 3 the same bits are a page
        #expect(d.isLeaf(at: .last))
        #expect(Descriptor(0x401).isLeaf(at: Level(1)))
        #expect(Descriptor(0x401).isReservedPage(at: .last))
        #expect(!Descriptor(0x400).isValid)
    }

    @Test func stage2AttributesMatchKernelEncodings() throws {
        // From s2-4k-ia40-prot-combos: rw normal page, device, normal-NC, FWB.
        let t = try Stage2PageTable(geometry: .stage2(granule: .size4K, iaBits: 40, lpa2: false))
        let normal = try #require(t.context.attributes([.read, .write]))
        #expect(t.context.leafPTE(0x4000, normal, .last) == 0x0040_0000_0000_47ff)
        let device = try #require(t.context.attributes([.read, .write, .device]))
        #expect(t.context.leafPTE(0xa000, device, .last) == 0x0040_0000_0000_a7c7)
        let nc = try #require(t.context.attributes([.read, .normalNC]))
        #expect(t.context.leafPTE(0xc000, nc, .last) == 0x0040_0000_0000_c757)
        #expect(t.context.attributes([.read, .execute, .device]) == nil)
        #expect(t.context.attributes([.device, .normalNC]) == nil)
        let fwb = try Stage2PageTable(geometry: .stage2(granule: .size4K, iaBits: 40, lpa2: false), features: .fwb)
        let fwbNormal = try #require(fwb.context.attributes([.read, .write]))
        #expect(fwb.context.leafPTE(0x8020_0000, fwbNormal, Level(2)) == 0x0040_0000_8020_07d9)
    }

    @Test func protLettersNormalise() {
        #expect(Prot(letters: "xrw")?.letters == "rwx")
        #expect(Prot(letters: "rrd")?.letters == "rd")
        #expect(Prot(letters: "rq") == nil)
        #expect(Prot(letters: "") == [])
    }
}
