import CKVMPageTable
import Testing
@testable import KVMPageTable

/// The Swift side must agree with the C header, which is proven against
/// the kernel's GENMASK forms at compile time.
@Suite struct ConstantParityTests {
    /// GENMASK(h, l) computed independently of the header.
    func genmask(_ h: UInt64, _ l: UInt64) -> UInt64 { (~0 << l) & (~0 >> (63 - h)) }

    @Test func addressMasksMatchGenmask() {
        #expect(KVMPT_PTE_ADDR_MASK_4K == genmask(47, 12))
        #expect(KVMPT_PTE_ADDR_MASK_16K == genmask(47, 14))
        #expect(KVMPT_PTE_ADDR_MASK_64K == genmask(47, 16))
        #expect(KVMPT_PTE_ADDR_51_48 == genmask(15, 12))
        #expect(KVMPT_PTE_ADDR_MASK_LPA2_4K == genmask(49, 12))
        #expect(KVMPT_PTE_ADDR_MASK_LPA2_16K == genmask(49, 14))
        #expect(KVMPT_PTE_ADDR_51_50_LPA2 == genmask(9, 8))
        for g in Granule.allCases {
            #expect(kvmpt_addr_mask(g.pageShift, false) == genmask(47, UInt64(g.pageShift)))
        }
    }

    @Test func attributeFieldsMatchGenmask() {
        #expect(KVMPT_PTE_LEAF_ATTR_LO == genmask(11, 2))
        #expect(KVMPT_PTE_LEAF_ATTR_HI == genmask(63, 50))
        #expect(KVMPT_PTE_LEAF_ATTR_HI_SW == genmask(58, 55))
        #expect(KVMPT_S2_MEMATTR == genmask(5, 2))
        #expect(KVMPT_S2_XN == genmask(54, 53))
        #expect(KVMPT_S2_PERMS == KVMPT_S2_S2AP_R | KVMPT_S2_S2AP_W | KVMPT_S2_XN)
        #expect(KVMPT_S1_AP == genmask(7, 6))
        #expect(KVMPT_S1_ATTRIDX == genmask(4, 2))
        #expect(KVMPT_INVALID_PTE_OWNER_MASK == genmask(9, 2))
    }

    @Test func flagEnumsImportAsOptionSets() {
        let x: kvm_pgtable_prot = [.KVM_PGTABLE_PROT_PX, .KVM_PGTABLE_PROT_UX]
        #expect(x == .KVM_PGTABLE_PROT_X)
        let w: kvm_pgtable_walk_flags = [.KVM_PGTABLE_WALK_LEAF, .KVM_PGTABLE_WALK_TABLE_POST]
        #expect(w.rawValue == 0b101)
        #expect(Prot.execute.rawValue == kvm_pgtable_prot.KVM_PGTABLE_PROT_X.rawValue)
        #expect(Prot.sw3.rawValue == 1 << 58)
        #expect(WalkFlags.skipCMO.rawValue == 1 << 6)
        #expect(WalkFlags([.leaf, .tablePre, .tablePost]).rawValue == 0b111)
    }

    @Test func debugViewsSeeTheSameBits() {
        var v = kvmpt_descriptor_view()
        v.raw = 0x0060_0000_8020_07fd  // S2 block: XN=11, AF, SH=3, S2AP=RW, MemAttr=0xf
        #expect(v.s2.valid == 1 && v.s2.type == 0)
        #expect(v.s2.memattr == 0xf)
        #expect(v.s2.s2ap_r == 1 && v.s2.s2ap_w == 1)
        #expect(v.s2.sh == 3 && v.s2.af == 1)
        #expect(v.s2.xn == 3)
        #expect(UInt64(v.s2.oa) << 12 == 0x8020_0000)
        v.raw = 0x0040_0000_0900_0753  // hyp device page
        #expect(v.s1.attridx == 4 && v.s1.ap == 1 && v.s1.xn == 1 && v.s1.type == 1)
    }

    @Test func granuleShiftsMatchKernelFormula() {
        for g in Granule.allCases {
            for l in Int8(-1)...3 {
                #expect(UInt32(g.shift(at: Level(l))) == kvmpt_granule_shift(g.pageShift, l))
            }
        }
        #expect(Granule.size4K.size(at: Level(1)) == 1 << 30)
        #expect(Granule.size16K.size(at: Level(2)) == 32 << 20)
        #expect(Granule.size64K.size(at: Level(2)) == 512 << 20)
        #expect(Granule.size4K.size(at: Level(-1)) == 1 << 48)
    }
}
