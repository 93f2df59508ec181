/// Memory that holds translation tables, addressed by physical address.
///
/// The walker reads (and operations write) entries through this one
/// interface, so a live table in a ``PageArena`` and a decoded image are
/// walked by the same code.
public protocol TableMemory {
    /// The granule-sized table page at physical address `pa`, or nil when
    /// that page is not inside this memory (a hostile or truncated image).
    func table(at pa: UInt64) -> UnsafeMutablePointer<UInt64>?
}
