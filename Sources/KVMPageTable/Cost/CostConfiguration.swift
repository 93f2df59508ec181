/// Why a cost experiment cannot run, in words for a person.
public struct CostError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong.
    public let message: String
    /// An error with `message`.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}

/// The question a cost experiment answers: a device region of `size` bytes
/// at IPA `ipa`, backed by PA `pa`, in a stage-2 table of the given shape
/// on a CPU with the given features.
public struct CostConfiguration: Hashable, Sendable {
    /// The granule.
    public var granule: Granule
    /// The IPA size in bits.
    public var iaBits: Int
    /// FEAT_LPA2 descriptors.
    public var lpa2: Bool
    /// CPU features (FWB, TLBI range).
    public var features: Stage2Features
    /// The guest physical address of the region.
    public var ipa: UInt64
    /// The host physical address of the device.
    public var pa: UInt64
    /// The region's size in bytes.
    public var size: UInt64
    /// The userspace address the VMM mapped the device at (the memslot's
    /// `userspace_addr` and the `VM_PFNMAP` VMA); nil means congruent with
    /// the PA (the PA itself is used).
    public var hva: UInt64?
    /// Whether the guest may write (`--ro` clears it).
    public var writable: Bool
    /// Table pages the memcache may hand out per table; nil is unlimited.
    public var memcachePages: Int?

    /// A configuration; by default 4K granule, 40-bit IPA, no features.
    public init(granule: Granule = .size4K, iaBits: Int = 40, lpa2: Bool = false,
                features: Stage2Features = [], ipa: UInt64, pa: UInt64, size: UInt64,
                hva: UInt64? = nil, writable: Bool = true, memcachePages: Int? = nil) {
        self.granule = granule
        self.iaBits = iaBits
        self.lpa2 = lpa2
        self.features = features
        self.ipa = ipa
        self.pa = pa
        self.size = size
        self.hva = hva
        self.writable = writable
        self.memcachePages = memcachePages
    }

    /// The userspace address in effect.
    public var effectiveHVA: UInt64 { hva ?? pa }

    /// The table's geometry, or why the shape is refused.
    public func geometry() throws(CostError) -> TableGeometry {
        do {
            return try TableGeometry.stage2(granule: granule, iaBits: iaBits, lpa2: lpa2)
        } catch {
            throw CostError(error.message)
        }
    }

    /// Checks the region against the table: non-empty, granule-aligned,
    /// inside the IPA space and the format's output addresses.
    public func validate() throws(CostError) {
        let g = try geometry()
        let page = granule.pageSize
        guard size > 0 else { throw CostError("--size must be more than 0") }
        for (name, value) in [("--ipa", ipa), ("--pa", pa), ("--size", size), ("--hva", effectiveHVA)]
        where value & (page - 1) != 0 {
            throw CostError("\(name) \(Hex.short(value)) is not aligned to the \(granule) granule")
        }
        let (ipaEnd, o1) = ipa.addingReportingOverflow(size)
        guard !o1, ipaEnd <= g.inputLimit else {
            throw CostError("IPA range \(Hex.short(ipa))+\(Hex.short(size)) goes beyond ia_bits=\(iaBits) (\(Hex.short(g.inputLimit)))")
        }
        let paBits = g.format.outputAddressBits
        let (paEnd, o2) = pa.addingReportingOverflow(size)
        guard !o2, paEnd <= UInt64(1) << UInt64(paBits) else {
            throw CostError("PA range \(Hex.short(pa))+\(Hex.short(size)) goes beyond the \(paBits)-bit output addresses of the \(granule)\(lpa2 ? " LPA2" : "") format")
        }
        let (_, o3) = effectiveHVA.addingReportingOverflow(size)
        guard !o3 else { throw CostError("--hva range overflows 64 bits") }
        if let m = memcachePages, m < 0 { throw CostError("the memcache cannot hold fewer than 0 pages") }
    }

    /// Parses a size or address as scripts write them: decimal or `0x` hex,
    /// optionally followed by `K`, `M`, `G` or `T` (powers of 1024).
    public static func parseNumber(_ text: String) -> UInt64? {
        if case .value(let v) = ScriptParser.parseNumber(text) { return v }
        return nil
    }
}
