extension Stage2PageTable {
    /// `kvm_pgtable_stage2_destroy`, then the one VMID-wide invalidation
    /// that retires the VM's translations: how a VM's stage 2 goes away.
    ///
    /// The kernel's free walker (`stage2_free_walker`, leaf and post-order
    /// visits over `[0, 2^ia_bits)`) drops every reference and frees every
    /// table page; it clears table entries but issues no TLBI, no
    /// break-before-make and no cache maintenance, since nothing may walk
    /// the table any more. The stale translations are then dropped with a
    /// single `__kvm_tlb_flush_vmid`, recorded here as one `tlbiVMID`.
    ///
    /// The kernel then frees the concatenated root (`free_pages_exact`).
    /// Here the root pages belong to the table for its whole life, so they
    /// are cleared instead: afterwards the table is empty, exactly as
    /// `kvm_pgtable_stage2_init` left it, and can be used again.
    /// ``lastMaintenance`` shows `pages=+0/-N` for the N table pages freed.
    public func destroy() {
        recording { m in
            var v = FreeVisitor(arena: context.arena, format: geometry.format)
            let r = context.walker.walk(0, size: geometry.inputLimit, visitor: &v)
            assert(r == 0, "the free walker failed: \(r)")
            // kvm_pgtable_stage2_destroy_pgd: leaf entries of the root were
            // only put, never cleared; the root's references are back to 1.
            let entries = geometry.granule.entriesPerTable
            let pageBytes = geometry.granule.pageSize
            for i in 0..<geometry.rootPages {
                let pa = rootPhysicalAddress &+ UInt64(i) &* pageBytes
                guard let page = arena.table(at: pa) else { continue }
                page.update(repeating: 0, count: entries)
            }
            m.tlbiVMID += 1
        }
    }
}
