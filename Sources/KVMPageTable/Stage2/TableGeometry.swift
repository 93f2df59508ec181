import CKVMPageTable

/// The shape of a table: where the walk starts and how many concatenated
/// pages the root holds, derived exactly as the kernel derives them.
public struct TableGeometry: Hashable, Sendable {
    /// Stage-2 or hyp.
    public let kind: TableKind
    /// The granule.
    public let granule: Granule
    /// The input address size in bits (`ia_bits` / `va_bits`).
    public let inputBits: Int
    /// Whether FEAT_LPA2 descriptors are used.
    public let lpa2: Bool
    /// The level the walk starts at.
    public let startLevel: Level
    /// Concatenated root pages (always 1 for hyp).
    public let rootPages: Int
    /// `kvm_granule_shift(start_level - 1)`: which root page an address uses.
    @usableFromInline let rootIndexShift: UInt32

    /// The input addresses the table covers: `0 ..< 2^inputBits`.
    @inlinable @inline(__always) public var inputLimit: UInt64 { 1 << UInt64(inputBits) }

    /// Translation levels, from the start level to 3.
    @inlinable public var levels: Int { 4 - Int(startLevel.rawValue) }

    /// The descriptor format in use.
    public var format: DescriptorFormat { DescriptorFormat(granule: granule, lpa2: lpa2) }

    /// Why a configuration is refused.
    public struct Refusal: Error, Hashable, Sendable, CustomStringConvertible {
        /// What is wrong with it.
        public let message: String
        /// The message.
        public var description: String { message }
    }

    /// The largest input size a granule/LPA2 combination accepts.
    public static func maximumInputBits(granule: Granule, lpa2: Bool) -> Int {
        (granule == .size64K || lpa2) ? 52 : 48
    }

    /// A stage-2 geometry as `kvm_get_vtcr()` and `kvm_pgtable_stage2_init()`
    /// derive it: at least two levels, up to 16 concatenated root pages.
    public static func stage2(granule: Granule, iaBits: Int, lpa2: Bool) throws(Refusal) -> TableGeometry {
        try validate(granule: granule, bits: iaBits, lpa2: lpa2, name: "ia_bits")
        // stage2_pgtable_levels(): concatenation absorbs up to 4 bits.
        let levels = max(2, Int(kvmpt_hw_pgtable_levels(granule.pageShift, UInt32(iaBits - 4))))
        let start = Level(Int8(4 - levels))
        return TableGeometry(kind: .stage2, granule: granule, inputBits: iaBits, lpa2: lpa2,
                             startLevel: start, rootPages: rootPageCount(granule: granule, bits: iaBits, start: start))
    }

    /// A hyp stage-1 geometry as `kvm_pgtable_hyp_init()` derives it: one
    /// root page, as many levels as `va_bits` needs.
    public static func hyp(granule: Granule, vaBits: Int, lpa2: Bool) throws(Refusal) -> TableGeometry {
        try validate(granule: granule, bits: vaBits, lpa2: lpa2, name: "va_bits")
        let levels = Int(kvmpt_hw_pgtable_levels(granule.pageShift, UInt32(vaBits)))
        let start = 4 - levels
        guard start >= Int(Level.first.rawValue), start <= Int(Level.last.rawValue) else {
            throw Refusal(message: "va_bits=\(vaBits) needs start level \(start), outside -1...3")
        }
        return TableGeometry(kind: .hyp, granule: granule, inputBits: vaBits, lpa2: lpa2,
                             startLevel: Level(Int8(start)), rootPages: 1)
    }

    /// The geometry a script configuration asks for.
    public init(_ configuration: ScriptConfiguration) throws(Refusal) {
        switch configuration.kind {
        case .stage2:
            self = try .stage2(granule: configuration.granule, iaBits: configuration.inputBits, lpa2: configuration.lpa2)
        case .hyp:
            self = try .hyp(granule: configuration.granule, vaBits: configuration.inputBits, lpa2: configuration.lpa2)
        }
    }

    private init(kind: TableKind, granule: Granule, inputBits: Int, lpa2: Bool, startLevel: Level, rootPages: Int) {
        self.kind = kind
        self.granule = granule
        self.inputBits = inputBits
        self.lpa2 = lpa2
        self.startLevel = startLevel
        self.rootPages = rootPages
        self.rootIndexShift = granule.shift(at: Level(startLevel.rawValue - 1))
    }

    private static func validate(granule: Granule, bits: Int, lpa2: Bool, name: String) throws(Refusal) {
        if lpa2 && granule == .size64K {
            throw Refusal(message: "lpa2 is not available with the 64K granule (it has its own 52-bit format)")
        }
        let maximum = maximumInputBits(granule: granule, lpa2: lpa2)
        guard bits >= 32, bits <= maximum else {
            let why = maximum == 48 ? " (52 needs lpa2 or the 64K granule)" : ""
            throw Refusal(message: "\(name)=\(bits) is outside 32...\(maximum) for granule=\(granule)\(lpa2 ? " lpa2" : "")\(why)")
        }
    }

    /// `kvm_pgd_pages()`: root index of the last input address, plus one.
    private static func rootPageCount(granule: Granule, bits: Int, start: Level) -> Int {
        let shift = granule.shift(at: Level(start.rawValue - 1))
        let top = (UInt64(1) << UInt64(bits)) &- 1
        return shift >= 64 ? 1 : Int(top >> UInt64(shift)) + 1
    }

    /// Index of the root page that holds `addr` (`kvm_pgd_page_idx`).
    @inlinable @inline(__always) public func rootPageIndex(of addr: UInt64) -> Int {
        let shift = rootIndexShift
        guard shift < 64 else { return 0 }
        return Int((addr & (inputLimit &- 1)) >> UInt64(shift))
    }
}
