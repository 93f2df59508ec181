import CKVMPageTable

/// What a walk visits and how (`enum kvm_pgtable_walk_flags`).
public struct WalkFlags: OptionSet, Hashable, Sendable {
    /// The kernel's bit values.
    public var rawValue: UInt64

    /// Wraps raw flag bits.
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// Visit leaf entries, empty ones included.
    public static let leaf = WalkFlags(rawValue: kvm_pgtable_walk_flags.KVM_PGTABLE_WALK_LEAF.rawValue)
    /// Visit table entries before their children.
    public static let tablePre = WalkFlags(rawValue: kvm_pgtable_walk_flags.KVM_PGTABLE_WALK_TABLE_PRE.rawValue)
    /// Visit table entries after their children.
    public static let tablePost = WalkFlags(rawValue: kvm_pgtable_walk_flags.KVM_PGTABLE_WALK_TABLE_POST.rawValue)
    /// Other walkers may share the table (entries change by compare-and-swap).
    public static let shared = WalkFlags(rawValue: kvm_pgtable_walk_flags.KVM_PGTABLE_WALK_SHARED.rawValue)
    /// The walk serves a fault: `-EAGAIN` ends it.
    public static let handleFault = WalkFlags(rawValue: kvm_pgtable_walk_flags.KVM_PGTABLE_WALK_HANDLE_FAULT.rawValue)
    /// Break-before-make without its TLB invalidation.
    public static let skipBBMTLBI = WalkFlags(rawValue: kvm_pgtable_walk_flags.KVM_PGTABLE_WALK_SKIP_BBM_TLBI.rawValue)
    /// Updates without cache maintenance.
    public static let skipCMO = WalkFlags(rawValue: kvm_pgtable_walk_flags.KVM_PGTABLE_WALK_SKIP_CMO.rawValue)
}

/// Which of the three visits a visitor callback is receiving.
public enum Visit: Sendable {
    /// A leaf entry (a block, a page, or an empty or invalid entry).
    case leaf
    /// A table entry, before the walk descends into it.
    case tablePre
    /// A table entry, after the walk has visited its children.
    case tablePost
}
