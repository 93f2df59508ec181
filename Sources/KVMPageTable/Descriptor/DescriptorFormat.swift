import CKVMPageTable

/// How a descriptor holds an output address: the granule and whether
/// FEAT_LPA2 52-bit descriptors are in use.
///
/// - 4K/16K without LPA2: `PA[47:PAGE_SHIFT]` in place.
/// - 64K: `PA[47:16]` in place and `PA[51:48]` in bits `[15:12]`.
/// - 4K/16K with LPA2: `PA[49:PAGE_SHIFT]` in place and `PA[51:50]` in bits
///   `[9:8]`, which is why LPA2 descriptors carry no shareability field.
public struct DescriptorFormat: Hashable, Sendable {
    /// The granule.
    public let granule: Granule
    /// Whether FEAT_LPA2 descriptors are in use (never with 64K).
    public let lpa2: Bool
    /// The bits of a descriptor that hold the output address.
    public let addressMask: UInt64
    /// `PAGE_SHIFT`, kept as a number for the conversions.
    public let pageShift: UInt32

    /// A format; LPA2 is ignored for 64K, which has its own 52-bit layout.
    public init(granule: Granule, lpa2: Bool) {
        self.granule = granule
        self.lpa2 = lpa2 && granule != .size64K
        var mask = kvmpt_addr_mask(granule.pageShift, self.lpa2)
        if self.lpa2 { mask |= KVMPT_PTE_ADDR_51_50_LPA2 }
        else if granule == .size64K { mask |= KVMPT_PTE_ADDR_51_48 }
        self.addressMask = mask
        self.pageShift = granule.pageShift
    }

    /// The largest output address size the format can express, in bits.
    public var outputAddressBits: Int { (lpa2 || granule == .size64K) ? 52 : 48 }

    /// `kvm_phys_to_pte`: the descriptor bits that encode `pa`.
    @inlinable public func pte(fromPhysical pa: UInt64) -> UInt64 {
        kvmpt_phys_to_pte(pa, pageShift, lpa2)
    }

    /// `kvm_pte_to_phys`: the output address a descriptor holds.
    @inlinable public func physical(fromPTE pte: UInt64) -> UInt64 {
        kvmpt_pte_to_phys(pte, pageShift, lpa2)
    }

    /// `kvm_init_valid_leaf_pte`: a valid leaf for `pa` with the attribute
    /// bits of `attr`; a page at the last level, a block above it.
    @inlinable @inline(__always)
    public func leafPTE(_ pa: UInt64, attributes attr: UInt64, level: Level) -> UInt64 {
        var pte = pte(fromPhysical: pa) | (attr & (KVMPT_PTE_LEAF_ATTR_LO | KVMPT_PTE_LEAF_ATTR_HI))
        if level.isLast { pte |= KVMPT_PTE_TYPE }
        return pte | KVMPT_PTE_VALID
    }

    /// `kvm_init_table_pte`: a table descriptor pointing at `pa`.
    @inlinable @inline(__always)
    public func tablePTE(_ pa: UInt64) -> UInt64 {
        pte(fromPhysical: pa) | KVMPT_PTE_TYPE | KVMPT_PTE_VALID
    }
}
