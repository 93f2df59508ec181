/// How a device region gets into the stage-2 table.
public enum MappingStrategy: String, CaseIterable, Sendable, Hashable, CustomStringConvertible {
    /// `kvm_phys_addr_ioremap`: one `PAGE_SIZE` map per page, the memcache
    /// topped up before each (``Stage2PageTable/ioremap(_:size:to:writable:)``).
    case page
    /// The 2021 RFC's loop: each step maps the largest block that the
    /// alignment of IPA and PA and the remaining size allow
    /// (``Stage2PageTable/ioremapBlocks(_:size:to:writable:)``).
    case block
    /// Mapped on first access: one stage-2 fault per mapping unit, each a
    /// `kvm_pgtable_stage2_map` of the size `user_mem_abort` picks for a
    /// `VM_PFNMAP` VMA (Linux 5.14 and later): PUD or PMD when the userspace
    /// address, the IPA and the PA are congruent modulo that size and the
    /// block lies inside the region, else a page.
    case fault

    /// `page`, `block` or `fault`.
    public var description: String { rawValue }
}

/// How the region's mappings are torn down again.
public enum TeardownStrategy: String, CaseIterable, Sendable, Hashable, CustomStringConvertible {
    /// `unmap_stage2_range`: `kvm_pgtable_stage2_unmap` over the region in
    /// `stage2_apply_range` chunks, each cleared entry invalidated on its
    /// own (unless the CPU defers, see ``range``).
    case perEntry = "per-entry"
    /// The same unmap on a CPU with FEAT_TLBIRANGE and FEAT_S2FWB, where
    /// the kernel defers leaf invalidations to one range invalidation per
    /// chunk. The two features are added to the configured ones.
    case range
    /// VM destruction: ``Stage2PageTable/destroy()`` frees every table with
    /// no per-entry invalidation, then one VMID-wide invalidation.
    case vmWide = "vm-wide"

    /// `per-entry`, `range` or `vm-wide`.
    public var description: String { rawValue }

    /// CPU features this strategy needs on top of the configured ones.
    public var requiredFeatures: Stage2Features {
        self == .range ? [.fwb, .tlbiRange] : []
    }
}
