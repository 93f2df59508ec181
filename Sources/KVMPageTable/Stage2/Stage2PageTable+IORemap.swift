extension Stage2PageTable {
    /// `kvm_mmu_cache_min_pages`: pages the memcache must hold before each
    /// ioremap step (one table page for every level below the root).
    public var minimumCachePages: Int { geometry.levels - 1 }

    /// `kvm_phys_addr_ioremap`: map device memory one `PAGE_SIZE` stage-2
    /// map per page, topping up the memcache before every step.
    ///
    /// The offset of `addr` within its page grows the size; `phys` is
    /// rounded down per step by the map. Stops at the first error.
    public func ioremap(_ addr: UInt64, size: UInt64, to phys: UInt64, writable: Bool) throws(KernelError) {
        let page = context.math.pageSize
        try ioremapLoop(addr, size: size, phys: phys, writable: writable) { _, _, _ in page }
    }

    /// The 2021 RFC's `kvm_phys_addr_ioremap`: like ``ioremap(_:size:to:writable:)``,
    /// but each step maps the largest block (`kvm_supported_pgsize`) that the
    /// alignment of `addr` and `phys` and the remaining size allow.
    public func ioremapBlocks(_ addr: UInt64, size: UInt64, to phys: UInt64, writable: Bool) throws(KernelError) {
        try ioremapLoop(addr, size: size, phys: phys, writable: writable) { a, end, pa in
            supportedBlockSize(addr: a, end: end, phys: pa)
        }
    }

    /// `kvm_supported_pgsize`: the largest level whose block fits at `addr`
    /// for `phys` within `end`, else a page.
    public func supportedBlockSize(addr: UInt64, end: UInt64, phys: UInt64) -> UInt64 {
        let math = context.math
        var level = geometry.startLevel
        while level <= .last {
            if math.leafFits(level, addr: addr, end: end, phys: phys) { return math.size(level) }
            level = level.next
        }
        return math.pageSize
    }

    private func ioremapLoop(_ ipa: UInt64, size: UInt64, phys: UInt64, writable: Bool,
                             step: (UInt64, UInt64, UInt64) -> UInt64) throws(KernelError) {
        let prot: Prot = writable ? [.device, .read, .write] : [.device, .read]
        let page = geometry.granule.pageSize
        let minimum = minimumCachePages
        let code: Int32 = recording { m in
            guard let attr = context.attributes(prot) else { return KernelError.einval.code }
            let total = size &+ (ipa & (page - 1))
            let start = ipa & ~(page - 1)
            let end = start &+ total
            var addr = start
            var pa = phys
            var r: Int32 = 0
            // One visitor for every step: each step is still a whole
            // kvm_pgtable_stage2_map walk from the root.
            var v = Stage2MapVisitor(contextPointer, phys: 0, attr: attr, walkFlags: [])
            let walker = hot.pointee.walker
            while addr < end {
                if context.arena.budget < minimum { r = KernelError.enomem.code; break }
                let chunk = step(addr, end, pa)
                v.phys = pa & ~(page &- 1)
                r = walker.walk(addr, size: chunk, visitor: &v)
                if r != 0 { break }
                pa &+= chunk
                addr &+= chunk
            }
            m += v.maintenance
            return r
        }
        try Self.check(code)
    }
}
