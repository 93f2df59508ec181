import CKVMPageTable

/// A translation granule: the page size a table is built for.
///
/// The raw value is `PAGE_SHIFT`. Every size a level resolves, the number of
/// entries in a table page and the smallest block level follow from it.
public enum Granule: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    /// 4 KiB pages: 512 entries a table, blocks at levels 1 and 2.
    case size4K = 12
    /// 16 KiB pages: 2048 entries a table, blocks at level 2.
    case size16K = 14
    /// 64 KiB pages: 8192 entries a table, blocks at level 2.
    case size64K = 16

    /// `PAGE_SHIFT`.
    @inlinable public var pageShift: UInt32 { rawValue }

    /// `PAGE_SIZE` in bytes.
    @inlinable public var pageSize: UInt64 { 1 << UInt64(rawValue) }

    /// Entries in one table page (`PTRS_PER_PTE`).
    @inlinable public var entriesPerTable: Int { 1 << Int(rawValue - 3) }

    /// Address bits one level resolves (`PAGE_SHIFT - 3`).
    @inlinable public var bitsPerLevel: UInt32 { rawValue - 3 }

    /// The smallest level at which the kernel installs a block
    /// (`KVM_PGTABLE_MIN_BLOCK_LEVEL`).
    @inlinable public var minimumBlockLevel: Level {
        self == .size4K ? Level(KVMPT_MIN_BLOCK_LEVEL_4K) : Level(KVMPT_MIN_BLOCK_LEVEL_16K_64K)
    }

    /// The input-address shift of an entry at `level` (`kvm_granule_shift`).
    @inlinable public func shift(at level: Level) -> UInt32 {
        (rawValue - 3) &* UInt32(truncatingIfNeeded: 4 &- Int32(level.rawValue)) &+ 3
    }

    /// Bytes one entry at `level` maps (`kvm_granule_size`).
    @inlinable public func size(at level: Level) -> UInt64 {
        1 << UInt64(shift(at: level))
    }

    /// Whether the kernel may install a block (or page) at `level`.
    @inlinable public func supportsLeaf(at level: Level) -> Bool {
        level >= minimumBlockLevel
    }

    /// Parses `4K`, `16K` or `64K` (case-insensitive `k`).
    public init?(name: String) {
        switch name.uppercased() {
        case "4K": self = .size4K
        case "16K": self = .size16K
        case "64K": self = .size64K
        default: return nil
        }
    }

    /// `4K`, `16K` or `64K`.
    public var description: String {
        switch self {
        case .size4K: "4K"
        case .size16K: "16K"
        case .size64K: "64K"
        }
    }
}
