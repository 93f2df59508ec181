/// What one mapping strategy followed by one teardown strategy issued, as
/// the library's operations recorded it, and how long the library took.
public struct CostMeasurement: Hashable, Sendable {
    /// How the region was mapped.
    public let mapping: MappingStrategy
    /// How it was torn down.
    public let teardown: TeardownStrategy
    /// The CPU features in effect (the configured ones plus what the
    /// teardown strategy needs).
    public let features: Stage2Features
    /// Valid descriptors the mapping wrote: leaves and table entries.
    public let descriptors: Int
    /// Table pages the mapping allocated.
    public let tablePages: Int
    /// Table pages the teardown freed.
    public let tablePagesFreed: Int
    /// Stage-2 faults taken (the `fault` strategy's map calls).
    public let faults: Int
    /// What the mapping issued.
    public let mapMaintenance: Maintenance
    /// What the teardown issued.
    public let teardownMaintenance: Maintenance
    /// The library's wall time for mapping plus teardown: the median of the runs.
    public let measuredSeconds: Double
    /// How many runs the median is over.
    public let runs: Int

    /// Mapping and teardown together.
    public var maintenance: Maintenance {
        var m = mapMaintenance
        m += teardownMaintenance
        return m
    }

    /// Every TLB invalidation call, of any kind.
    public var totalTLBIs: Int {
        let m = maintenance
        return m.tlbiIPA + m.tlbiRange + m.tlbiVMID
    }
}

/// The results of a cost experiment: a measurement per combination, and
/// the layout each mapping strategy produced.
public struct CostResults: Sendable {
    /// The question asked.
    public let configuration: CostConfiguration
    /// The table's geometry.
    public let geometry: TableGeometry
    /// One per mapping × teardown combination, mapping-major.
    public let measurements: [CostMeasurement]
    /// The layout of each mapping strategy, in the order run.
    public let layouts: [(mapping: MappingStrategy, layout: MappingLayout)]

    /// The measurement for one combination.
    public func measurement(_ mapping: MappingStrategy, _ teardown: TeardownStrategy) -> CostMeasurement? {
        measurements.first { $0.mapping == mapping && $0.teardown == teardown }
    }

    /// The layout one mapping strategy produced.
    public func layout(_ mapping: MappingStrategy) -> MappingLayout? {
        layouts.first { $0.mapping == mapping }?.layout
    }
}

/// Maps a device region and tears it down under each strategy, using the
/// library's own operations on a fresh table per combination and run; the
/// counts are what those operations recorded in their ``Maintenance``.
///
/// This is the experiment the 2021 RFC "kvm: arm64: Try stage2 block
/// mapping for host device MMIO" was asked for: how much blocks save, and
/// when, compared with a VM-wide invalidation at teardown.
public struct CostExperiment: Sendable {
    /// The region and the table.
    public var configuration: CostConfiguration
    /// Mapping strategies to try, in order.
    public var mappings: [MappingStrategy]
    /// Teardown strategies to try after each mapping, in order.
    public var teardowns: [TeardownStrategy]
    /// Runs per combination; the measured time is their median.
    public var runs: Int

    /// An experiment over every strategy, 3 runs each.
    public init(_ configuration: CostConfiguration,
                mappings: [MappingStrategy] = MappingStrategy.allCases,
                teardowns: [TeardownStrategy] = TeardownStrategy.allCases,
                runs: Int = 3) {
        self.configuration = configuration
        self.mappings = mappings
        self.teardowns = teardowns
        self.runs = runs
    }

    /// Runs every combination.
    public func run() throws(CostError) -> CostResults {
        try configuration.validate()
        guard runs >= 1 else { throw CostError("--runs must be at least 1") }
        let geometry = try configuration.geometry()
        var measurements: [CostMeasurement] = []
        var layouts: [(mapping: MappingStrategy, layout: MappingLayout)] = []
        for mapping in mappings {
            for teardown in teardowns {
                let (m, layout) = try measure(mapping, teardown, geometry: geometry)
                measurements.append(m)
                if !layouts.contains(where: { $0.mapping == mapping }) {
                    layouts.append((mapping, layout))
                }
            }
        }
        return CostResults(configuration: configuration, geometry: geometry,
                           measurements: measurements, layouts: layouts)
    }

    private struct Run {
        var layout: MappingLayout
        var faults: Int
        var map: Maintenance
        var teardown: Maintenance
        var seconds: Double
    }

    private func measure(_ mapping: MappingStrategy, _ teardown: TeardownStrategy,
                         geometry: TableGeometry) throws(CostError) -> (CostMeasurement, MappingLayout) {
        let features = configuration.features.union(teardown.requiredFeatures)
        var first: Run?
        var times: [Double] = []
        for _ in 0..<runs {
            let r = try once(mapping, teardown, geometry: geometry, features: features)
            if let f = first {
                // The operations are deterministic: every run issues the same.
                assert(f.map == r.map && f.teardown == r.teardown && f.faults == r.faults,
                       "runs of \(mapping)/\(teardown) disagree")
            } else {
                first = r
            }
            times.append(r.seconds)
        }
        guard let f = first else { throw CostError("no run") }
        times.sort()
        let median = times.count % 2 == 1 ? times[times.count / 2]
            : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
        let m = CostMeasurement(
            mapping: mapping, teardown: teardown, features: features,
            descriptors: f.layout.descriptors, tablePages: f.map.pagesAllocated,
            tablePagesFreed: f.teardown.pagesFreed, faults: f.faults,
            mapMaintenance: f.map, teardownMaintenance: f.teardown,
            measuredSeconds: median, runs: runs)
        return (m, f.layout)
    }

    private func once(_ mapping: MappingStrategy, _ teardown: TeardownStrategy,
                      geometry: TableGeometry, features: Stage2Features) throws(CostError) -> Run {
        let c = configuration
        let table: Stage2PageTable
        do {
            table = try Stage2PageTable(geometry: geometry, features: features)
        } catch {
            throw CostError("cannot make a table: \(error)")
        }
        table.arena.budget = c.memcachePages
        let clock = ContinuousClock()

        let t0 = clock.now
        var faults = 0
        do throws(KernelError) {
            switch mapping {
            case .page: try table.ioremap(c.ipa, size: c.size, to: c.pa, writable: c.writable)
            case .block: try table.ioremapBlocks(c.ipa, size: c.size, to: c.pa, writable: c.writable)
            case .fault: faults = try Self.faultIn(table, c)
            }
        } catch {
            throw CostError("\(mapping) mapping failed: \(error) (after \(table.maintenance.pagesAllocated) table pages)")
        }
        let mapped = clock.now - t0
        let mapMaintenance = table.maintenance

        // Read, not timed: what the mapping left over the region.
        let layout = MappingLayout(of: table, start: c.ipa, size: c.size)

        let t1 = clock.now
        do throws(KernelError) {
            switch teardown {
            case .perEntry, .range: try Self.unmapStage2Range(table, c.ipa, size: c.size)
            case .vmWide: table.destroy()
            }
        } catch {
            throw CostError("\(teardown) teardown failed: \(error)")
        }
        let tornDown = clock.now - t1
        var teardownMaintenance = table.maintenance
        teardownMaintenance.subtract(mapMaintenance)
        return Run(layout: layout, faults: faults, map: mapMaintenance, teardown: teardownMaintenance,
                   seconds: (mapped + tornDown).seconds)
    }

    /// `unmap_stage2_range`: `kvm_pgtable_stage2_unmap` over `[addr, addr +
    /// size)` in the chunks `stage2_apply_range` cuts it into, at the
    /// boundaries of the smallest block level's size (1 GiB with 4K pages,
    /// 32 MiB with 16K, 512 MiB with 64K), where the kernel may reschedule.
    public static func unmapStage2Range(_ table: Stage2PageTable, _ addr: UInt64, size: UInt64) throws(KernelError) {
        let g = table.geometry.granule
        let chunk = g.size(at: g.minimumBlockLevel)
        let end = addr &+ size
        var a = addr
        while a != end {
            // stage2_range_addr_end
            let boundary = (a &+ chunk) & ~(chunk &- 1)
            let next = (boundary &- 1) < (end &- 1) ? boundary : end
            try table.unmap(a, size: next &- a)
            a = next
        }
    }

    /// The block size `user_mem_abort` maps for a fault at `hva` in a
    /// `VM_PFNMAP` VMA that is also the memslot: `get_vma_page_shift`, then
    /// `fault_supports_stage2_huge_mapping` for PUD, falling back to PMD,
    /// then to a page.
    ///
    /// The host's PMD and PUD sizes are those of a 48-bit VA kernel with the
    /// table's granule (level 2 and level 1 entries: 2 MiB/1 GiB with 4K,
    /// 32 MiB/64 GiB with 16K, 512 MiB/4 TiB with 64K).
    public static func faultMappingSize(granule: Granule, ipaStart: UInt64, hvaStart: UInt64,
                                        paStart: UInt64, size: UInt64, hva: UInt64) -> UInt64 {
        let page = granule.pageSize
        let pmd = granule.size(at: Level(2)), pud = granule.size(at: Level(1))
        let hvaEnd = hvaStart &+ size
        let pa = paStart &+ (hva &- hvaStart)  // (vm_pgoff << PAGE_SHIFT) + (hva - vm_start)

        // get_vma_page_shift
        func vmaAllows(_ s: UInt64) -> Bool {
            let mask = s &- 1
            let up = (hva &+ mask) & ~mask  // ALIGN(hva, size), as the kernel writes it
            return hva & mask == pa & mask && hva & ~mask >= hvaStart && up <= hvaEnd
        }
        // fault_supports_stage2_huge_mapping
        func memslotAllows(_ s: UInt64) -> Bool {
            let mask = s &- 1
            if ipaStart & mask != hvaStart & mask { return false }
            let down = hva & ~mask
            let (top, o) = down.addingReportingOverflow(s)
            return !o && down >= hvaStart && top <= hvaEnd
        }
        var shift = page
        if vmaAllows(pud) { shift = pud } else if vmaAllows(pmd) { shift = pmd }
        if shift == pud {
            if memslotAllows(pud) { return pud }
            shift = pmd
        }
        if shift == pmd {
            if memslotAllows(pmd) { return pmd }
        }
        return page
    }

    /// The `fault` strategy: the guest touches the region from its start;
    /// each access to an unmapped IPA takes a stage-2 fault, tops up the
    /// memcache (`kvm_mmu_topup_memory_cache` with `kvm_mmu_cache_min_pages`)
    /// and maps one unit with `kvm_pgtable_stage2_map` as the fault path
    /// does (shared walk, handle-fault); the next access is just past it.
    static func faultIn(_ table: Stage2PageTable, _ c: CostConfiguration) throws(KernelError) -> Int {
        var faults = 0
        let prot: Prot = c.writable ? [.device, .read, .write] : [.device, .read]
        let end = c.ipa &+ c.size
        var addr = c.ipa
        while addr < end {
            if let b = table.arena.budget, b < table.minimumCachePages { throw .enomem }
            let hva = c.effectiveHVA &+ (addr &- c.ipa)
            let s = faultMappingSize(granule: table.geometry.granule, ipaStart: c.ipa,
                                     hvaStart: c.effectiveHVA, paStart: c.pa, size: c.size, hva: hva)
            let ipa = addr & ~(s &- 1)
            try table.map(ipa, size: s, to: c.pa &+ (ipa &- c.ipa), prot: prot, flags: [.shared, .handleFault])
            faults += 1
            addr = ipa &+ s
        }
        return faults
    }
}

extension Maintenance {
    /// Removes an earlier snapshot's counts from a later one.
    mutating func subtract(_ b: Maintenance) {
        tlbiIPA -= b.tlbiIPA
        tlbiRange -= b.tlbiRange
        tlbiVMID -= b.tlbiVMID
        dcacheBytes &-= b.dcacheBytes
        icacheBytes &-= b.icacheBytes
        pagesAllocated -= b.pagesAllocated
        pagesFreed -= b.pagesFreed
    }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) * 1e-18
    }
}
