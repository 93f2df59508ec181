import CKVMPageTable

/// What an operation asked of the hardware and of the page allocator.
///
/// Every operation records into one of these, never into ad-hoc counters;
/// a transcript prints it after the result.
public struct Maintenance: Hashable, Sendable, CustomStringConvertible {
    /// Per-entry invalidations: `__kvm_tlb_flush_vmid_ipa` (and its `_nsh`
    /// form) for stage-2, `TLBI VAE2IS`/`VALE2IS` for hyp.
    public var tlbiIPA = 0
    /// Range invalidations: `__kvm_tlb_flush_vmid_range` calls.
    public var tlbiRange = 0
    /// Whole-VMID invalidations: `__kvm_tlb_flush_vmid`.
    public var tlbiVMID = 0
    /// Bytes of data-cache clean+invalidate to the PoC.
    public var dcacheBytes: UInt64 = 0
    /// Bytes of instruction-cache invalidate to the PoU.
    public var icacheBytes: UInt64 = 0
    /// Table pages allocated (root pages not counted).
    public var pagesAllocated = 0
    /// Table pages freed.
    public var pagesFreed = 0

    /// Nothing issued.
    public init() {}

    /// Adds another record to this one.
    @inlinable
    public static func += (a: inout Maintenance, b: Maintenance) {
        a.tlbiIPA += b.tlbiIPA
        a.tlbiRange += b.tlbiRange
        a.tlbiVMID += b.tlbiVMID
        a.dcacheBytes &+= b.dcacheBytes
        a.icacheBytes &+= b.icacheBytes
        a.pagesAllocated += b.pagesAllocated
        a.pagesFreed += b.pagesFreed
    }

    /// `kvm_tlb_flush_vmid_range`: with FEAT_TLBIRANGE, one range TLBI per
    /// `MAX_TLBI_RANGE_PAGES` pages of `size` (none for less than a page);
    /// without it, one VMID-wide invalidation.
    @inlinable
    public mutating func flushRange(size: UInt64, pageShift: UInt32, rangeSupported: Bool) {
        guard rangeSupported else {
            tlbiVMID += 1
            return
        }
        let pages = size >> UInt64(pageShift)
        let chunks = (pages &+ KVMPT_MAX_TLBI_RANGE_PAGES &- 1) / KVMPT_MAX_TLBI_RANGE_PAGES
        tlbiRange += Int(chunks)
    }

    /// `tlbi_ipa=… tlbi_range=… tlbi_vmid=… dcache=0x… icache=0x… pages=+A/-F`.
    public var description: String {
        "tlbi_ipa=\(tlbiIPA) tlbi_range=\(tlbiRange) tlbi_vmid=\(tlbiVMID) dcache=\(Hex.short(dcacheBytes)) icache=\(Hex.short(icacheBytes)) pages=+\(pagesAllocated)/-\(pagesFreed)"
    }
}
