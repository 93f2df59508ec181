import CKVMPageTable

/// One page-table entry (`kvm_pte_t`) with named views of its fields.
///
/// Whether an entry is a table, a block or a page depends on the level it
/// sits at, so the level-dependent questions take the level.
public struct Descriptor: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The 64 raw bits.
    public var rawValue: UInt64

    /// Wraps raw bits.
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// Wraps raw bits.
    @inlinable public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    /// The all-zero (empty) entry.
    public static let empty = Descriptor(0)

    /// Bit 0.
    @inlinable public var isValid: Bool { rawValue & KVMPT_PTE_VALID != 0 }

    /// `kvm_pte_table`: valid, type bit set, and not at the last level.
    @inlinable public func isTable(at level: Level) -> Bool {
        !level.isLast && rawValue & (KVMPT_PTE_VALID | KVMPT_PTE_TYPE) == (KVMPT_PTE_VALID | KVMPT_PTE_TYPE)
    }

    /// A valid entry that maps memory: a block, or a page at the last level.
    @inlinable public func isLeaf(at level: Level) -> Bool {
        isValid && !isTable(at: level)
    }

    /// A valid level-3 entry with the type bit clear: reserved by the
    /// architecture (a translation fault).
    @inlinable public func isReservedPage(at level: Level) -> Bool {
        level.isLast && rawValue & (KVMPT_PTE_VALID | KVMPT_PTE_TYPE) == KVMPT_PTE_VALID
    }

    /// Stage-2 `S2AP[0]`: readable.
    @inlinable public var s2Readable: Bool { rawValue & KVMPT_S2_S2AP_R != 0 }
    /// Stage-2 `S2AP[1]`: writable.
    @inlinable public var s2Writable: Bool { rawValue & KVMPT_S2_S2AP_W != 0 }
    /// Stage-2 `XN[1:0]` (bits 54:53).
    @inlinable public var s2XN: UInt64 { (rawValue & KVMPT_S2_XN) >> 53 }
    /// Stage-2 `MemAttr[3:0]`.
    @inlinable public var s2MemAttr: UInt64 { (rawValue & KVMPT_S2_MEMATTR) >> 2 }
    /// The access flag (bit 10, both stages).
    @inlinable public var accessFlag: Bool { rawValue & KVMPT_S2_AF != 0 }
    /// Shareability `SH[1:0]` (bits 9:8; output address bits under LPA2).
    @inlinable public var shareability: UInt64 { (rawValue & KVMPT_S2_SH) >> 8 }
    /// The four software bits `[58:55]`.
    @inlinable public var softwareBits: UInt64 { (rawValue & KVMPT_PTE_LEAF_ATTR_HI_SW) >> 55 }
    /// Stage-1 `AttrIndx[2:0]`.
    @inlinable public var s1AttrIndex: UInt64 { (rawValue & KVMPT_S1_ATTRIDX) >> 2 }
    /// Stage-1 `AP[2:1]`.
    @inlinable public var s1AP: UInt64 { (rawValue & KVMPT_S1_AP) >> 6 }
    /// Stage-1 `XN` (bit 54).
    @inlinable public var s1XN: Bool { rawValue & KVMPT_S1_XN != 0 }

    /// `0x` and 16 hex digits.
    public var description: String { Hex.padded(rawValue) }
}
