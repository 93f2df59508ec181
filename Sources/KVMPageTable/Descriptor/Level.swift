import CKVMPageTable

/// A translation level, from -1 (LPA2 with 4K pages) to 3 (pages).
///
/// Levels compare as the kernel's `s8 level` does: a smaller level is
/// nearer the root and maps more per entry.
public struct Level: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The level as a signed number.
    public var rawValue: Int8

    /// Wraps a raw level; any value is representable so that hostile images
    /// can be described, but only `first ... last` are walked.
    @inlinable public init(rawValue: Int8) { self.rawValue = rawValue }

    /// Wraps a raw level.
    @inlinable public init(_ rawValue: Int8) { self.rawValue = rawValue }

    /// `KVM_PGTABLE_FIRST_LEVEL`.
    public static let first = Level(KVMPT_FIRST_LEVEL)
    /// `KVM_PGTABLE_LAST_LEVEL`: entries here are pages, never tables.
    public static let last = Level(KVMPT_LAST_LEVEL)

    /// Whether this is the last level.
    @inlinable public var isLast: Bool { rawValue == KVMPT_LAST_LEVEL }

    /// The level below this one.
    @inlinable public var next: Level { Level(rawValue &+ 1) }

    /// Nearer the root compares smaller.
    @inlinable public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }

    /// `L-1` … `L3`, as dumps print it.
    public var description: String { "L\(rawValue)" }
}
