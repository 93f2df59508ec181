/// A granule's level arithmetic as plain numbers.
///
/// `Granule` is an enum, and reading an enum's raw value is a switch; the
/// walker and the visitors ask "how big is an entry at this level" for every
/// entry, so they keep the answers' ingredients here instead.
public struct LevelMath: Hashable, Sendable {
    /// `PAGE_SHIFT`.
    public let pageShift: UInt64
    /// Address bits one level resolves (`PAGE_SHIFT - 3`).
    public let levelBits: UInt64
    /// `PTRS_PER_PTE - 1`.
    public let indexMask: UInt64
    /// `KVM_PGTABLE_MIN_BLOCK_LEVEL`.
    public let minimumBlockLevel: Int8

    /// The arithmetic of `granule`.
    @inlinable
    public init(_ granule: Granule) {
        pageShift = UInt64(granule.pageShift)
        levelBits = pageShift - 3
        indexMask = (1 << levelBits) - 1
        minimumBlockLevel = granule.minimumBlockLevel.rawValue
    }

    /// `kvm_granule_shift`.
    @inlinable
    public func shift(_ level: Level) -> UInt64 {
        levelBits &* UInt64(truncatingIfNeeded: 4 &- Int64(level.rawValue)) &+ 3
    }

    /// `kvm_granule_size`.
    @inlinable
    public func size(_ level: Level) -> UInt64 { 1 &<< shift(level) }

    /// `kvm_level_supports_block_mapping`.
    @inlinable
    public func supportsLeaf(_ level: Level) -> Bool { level.rawValue >= minimumBlockLevel }

    /// `kvm_block_mapping_supported`: whether one leaf at `level` can map
    /// `[addr, end)` from `phys` (the level allows a leaf, the entry fits in
    /// the range, and both addresses are aligned to its size).
    @inlinable @inline(__always)
    public func leafFits(_ level: Level, addr: UInt64, end: UInt64, phys: UInt64) -> Bool {
        guard supportsLeaf(level) else { return false }
        let size = size(level)
        return size <= end &- addr && phys & (size &- 1) == 0 && addr & (size &- 1) == 0
    }

    /// `PAGE_SIZE`.
    @inlinable
    public var pageSize: UInt64 { 1 &<< pageShift }
}
