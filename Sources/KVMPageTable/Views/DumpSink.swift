/// Receives the canonical dump one line at a time, without its newline.
public protocol DumpSink {
    /// One line's bytes.
    mutating func emit(_ line: UnsafeBufferPointer<UInt8>)

    /// One line given by its fields: `L<level> 0x<address> 0x<descriptor>`.
    /// The default formats the line and calls ``emit(_:)``.
    mutating func emit(level: Int8, address: UInt64, descriptor: UInt64)
}

extension DumpSink {
    /// Formats the line and hands it to ``emit(_:)``.
    @inlinable
    public mutating func emit(level: Int8, address: UInt64, descriptor: UInt64) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 48) { buf in
            let n = DumpLine.format(level: level, address: address, descriptor: descriptor, into: buf.baseAddress!)
            emit(UnsafeBufferPointer(start: buf.baseAddress!, count: n))
        }
    }
}

/// The canonical dump's line layout.
public enum DumpLine {
    /// Writes `L<level> 0x<16 hex> 0x<16 hex>` (no newline); returns its length.
    @inlinable
    public static func format(level: Int8, address: UInt64, descriptor: UInt64,
                              into p: UnsafeMutablePointer<UInt8>) -> Int {
        var i = 0
        p[0] = 0x4c  // L
        i = 1
        if level < 0 { p[i] = 0x2d; i += 1 }
        p[i] = 0x30 &+ UInt8(truncatingIfNeeded: level < 0 ? -level : level)
        p[i + 1] = 0x20
        i += 2
        i += Hex.write16(address, into: p + i, prefixed: true)
        p[i] = 0x20
        i += 1
        i += Hex.write16(descriptor, into: p + i, prefixed: true)
        return i
    }
}

/// The 64-bit FNV-1a hash of lines, each followed by `\n`.
public struct FNV1a: DumpSink, Hashable, Sendable {
    /// FNV-1a's offset basis.
    public static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    /// FNV-1a's prime.
    public static let prime: UInt64 = 0x0000_0100_0000_01b3

    /// The hash so far.
    public var value: UInt64 = FNV1a.offsetBasis

    /// The hash of nothing.
    public init() {}

    /// Hashes `bytes`.
    @inlinable
    public mutating func hash(_ bytes: UnsafeBufferPointer<UInt8>) {
        var h = value
        for b in bytes { h = (h ^ UInt64(b)) &* FNV1a.prime }
        value = h
    }

    /// Hashes the line and its newline.
    @inlinable
    public mutating func emit(_ line: UnsafeBufferPointer<UInt8>) {
        hash(line)
        value = (value ^ 0x0a) &* FNV1a.prime
    }
}

/// Collects lines as text, each ending in `\n`.
public struct DumpText: DumpSink {
    /// The bytes so far.
    public var bytes: [UInt8] = []

    /// Nothing yet.
    public init() {}

    /// Appends the line and a newline.
    public mutating func emit(_ line: UnsafeBufferPointer<UInt8>) {
        bytes.append(contentsOf: line)
        bytes.append(0x0a)
    }

    /// The text.
    public var text: String { String(decoding: bytes, as: UTF8.self) }
}
