/// CPU features that change what stage-2 operations write and issue.
public struct Stage2Features: OptionSet, Hashable, Sendable {
    /// The raw bits.
    public var rawValue: UInt8

    /// Wraps raw bits.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// FEAT_S2FWB: the FWB MemAttr encoding; no data-cache maintenance.
    public static let fwb = Stage2Features(rawValue: 1 << 0)
    /// FEAT_TLBIRANGE: range invalidation, and deferred unmap TLBIs with FWB.
    public static let tlbiRange = Stage2Features(rawValue: 1 << 1)
    /// `ARM64_HAS_XNX`: PX and UX may differ.
    public static let xnx = Stage2Features(rawValue: 1 << 2)
}
