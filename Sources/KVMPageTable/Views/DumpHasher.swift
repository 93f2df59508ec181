/// The FNV-1a hash of canonical dump lines, computed from the lines' fields.
///
/// FNV-1a is one multiply per byte in series, which made `summary` the
/// slowest statement of a large script. Two facts shorten the chain:
///
/// - `(h ^ b) * p == h*p + ((l ^ b) - l) * p`, where `l` is `h`'s low byte,
///   and the next low byte depends on `l` and `b` alone. So hashing a byte
///   string `s` from any state `h` gives `h * p^k + E[l]`, with a 256-entry
///   table `E` that depends on `s` only.
/// - Dump lines repeat most of their text over long runs: the level and
///   high address digits, the descriptor's upper bits, its low attribute
///   bits. Those segments are hashed through a table (built once a segment
///   repeats), the varying digits byte by byte.
///
/// The result is bit-for-bit the FNV-1a of the formatted text; a test
/// checks it against ``FNV1a`` over random runs.
public struct DumpHasher: DumpSink {
    /// The hash so far.
    public private(set) var value: UInt64 = FNV1a.offsetBasis

    @usableFromInline var head: SegmentMemo    // "L3 0x" + address digits 0..<10
    @usableFromInline var middle: SegmentMemo  // address digits 13..<16, " 0x", descriptor digits 0..<10
    @usableFromInline var tail: SegmentMemo    // descriptor digits 13..<16, "\n"

    /// The hash of nothing.
    public init() {
        head = SegmentMemo()
        middle = SegmentMemo()
        tail = SegmentMemo()
    }

    /// Hashes a line given as bytes (and its newline).
    public mutating func emit(_ line: UnsafeBufferPointer<UInt8>) {
        var h = value
        for b in line { h = (h ^ UInt64(b)) &* FNV1a.prime }
        value = (h ^ 0x0a) &* FNV1a.prime
    }

    @inlinable @inline(__always)
    static func step(_ h: UInt64, _ b: UInt8) -> UInt64 { (h ^ UInt64(b)) &* FNV1a.prime }

    /// Hashes `count` hex digits of `v` (most significant first).
    @inlinable @inline(__always)
    static func hashDigits(_ h: UInt64, _ v: UInt64, count: Int) -> UInt64 {
        var h = h
        var shift = (count - 1) * 4
        while shift >= 0 {
            h = step(h, Hex.digit((v &>> UInt64(shift)) & 0xf))
            shift -= 4
        }
        return h
    }

    /// Hashes one line from its fields.
    public mutating func emit(level: Int8, address: UInt64, descriptor: UInt64) {
        var h = value
        // "L<level> 0x" + address digits 0..<10 (bits 63..24).
        let headKey = (address &>> 24) | (UInt64(UInt8(bitPattern: level)) &<< 56)
        h = head.hash(h, key: headKey, level: level) { buf in
            var n = 0
            buf[n] = 0x4c; n += 1
            if level < 0 { buf[n] = 0x2d; n += 1 }
            buf[n] = 0x30 &+ UInt8(truncatingIfNeeded: level < 0 ? -level : level); n += 1
            buf[n] = 0x20; buf[n + 1] = 0x30; buf[n + 2] = 0x78; n += 3
            var shift = 60
            while shift >= 24 { buf[n] = Hex.digit((address &>> UInt64(shift)) & 0xf); n += 1; shift -= 4 }
            return n
        }
        // Address digits 10..<13 (bits 23..12).
        h = Self.hashDigits(h, (address &>> 12) & 0xfff, count: 3)
        // Address digits 13..<16, " 0x", descriptor digits 0..<10 (bits 63..24).
        let middleKey = ((descriptor &>> 24) &<< 12) | (address & 0xfff)
        h = middle.hash(h, key: middleKey, level: 0) { buf in
            var n = 0
            var shift = 8
            while shift >= 0 { buf[n] = Hex.digit((address &>> UInt64(shift)) & 0xf); n += 1; shift -= 4 }
            buf[n] = 0x20; buf[n + 1] = 0x30; buf[n + 2] = 0x78; n += 3
            shift = 60
            while shift >= 24 { buf[n] = Hex.digit((descriptor &>> UInt64(shift)) & 0xf); n += 1; shift -= 4 }
            return n
        }
        // Descriptor digits 10..<13 (bits 23..12).
        h = Self.hashDigits(h, (descriptor &>> 12) & 0xfff, count: 3)
        // Descriptor digits 13..<16 and the newline.
        h = tail.hash(h, key: descriptor & 0xfff, level: 0) { buf in
            var n = 0
            var shift = 8
            while shift >= 0 { buf[n] = Hex.digit((descriptor &>> UInt64(shift)) & 0xf); n += 1; shift -= 4 }
            buf[n] = 0x0a
            return n + 1
        }
        value = h
    }
}

/// One memoised segment position: a few recently seen contents (keys),
/// how often each repeated, and, once one has repeated enough, its table
/// `E[l]` and `p^k`. Several slots, because table-descriptor lines
/// interleave with the leaves they point to and would evict a single one.
@usableFromInline
struct SegmentMemo {
    /// Repeats before a table pays for itself (256 chains of k steps).
    @usableFromInline static let buildAfter = 16
    @usableFromInline static let slots = 4

    @usableFromInline var keys = [UInt64](repeating: ~0, count: SegmentMemo.slots)
    @usableFromInline var levels = [Int8](repeating: 0, count: SegmentMemo.slots)
    @usableFromInline var repeats = [Int](repeating: 0, count: SegmentMemo.slots)
    @usableFromInline var ready = [Bool](repeating: false, count: SegmentMemo.slots)
    @usableFromInline var powers = [UInt64](repeating: 1, count: SegmentMemo.slots)
    @usableFromInline var tables = [UInt64](repeating: 0, count: SegmentMemo.slots * 256)
    /// The slot used last (checked first).
    @usableFromInline var recent = 0
    /// The slot to replace next.
    @usableFromInline var victim = 0

    @usableFromInline init() {}

    /// Hashes the segment (whose bytes `write` produces) from state `h`.
    @inlinable @inline(__always)
    mutating func hash(_ h: UInt64, key k: UInt64, level: Int8,
                       _ write: (UnsafeMutablePointer<UInt8>) -> Int) -> UInt64 {
        let r = recent
        if ready[r], keys[r] == k, levels[r] == level {
            return tables.withUnsafeBufferPointer { h &* powers[r] &+ $0[r &* 256 &+ Int(h & 0xff)] }
        }
        return slow(h, key: k, level: level, write)
    }

    @inlinable
    mutating func slow(_ h: UInt64, key k: UInt64, level: Int8,
                       _ write: (UnsafeMutablePointer<UInt8>) -> Int) -> UInt64 {
        var slot = -1
        for i in 0..<Self.slots where keys[i] == k && levels[i] == level {
            slot = i
            break
        }
        if slot >= 0, ready[slot] {
            recent = slot
            return tables.withUnsafeBufferPointer { h &* powers[slot] &+ $0[slot &* 256 &+ Int(h & 0xff)] }
        }
        if slot < 0 {
            slot = victim
            victim = (victim + 1) % Self.slots
            keys[slot] = k
            levels[slot] = level
            repeats[slot] = 0
            ready[slot] = false
        }
        repeats[slot] += 1
        recent = slot
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { buf in
            let p = buf.baseAddress!
            let n = write(p)
            if repeats[slot] >= Self.buildAfter { build(slot, p, n) }
            var x = h
            for i in 0..<n { x = DumpHasher.step(x, p[i]) }
            return x
        }
    }

    /// `E[l] = F(l, s) - l * p^k` for every low byte `l`.
    @usableFromInline
    mutating func build(_ slot: Int, _ bytes: UnsafeMutablePointer<UInt8>, _ n: Int) {
        var pk: UInt64 = 1
        for _ in 0..<n { pk = pk &* FNV1a.prime }
        tables.withUnsafeMutableBufferPointer { all in
            let t = all.baseAddress! + slot * 256
            // Eight independent chains at a time keep the multiplier busy.
            var l = 0
            while l < 256 {
                var x0 = UInt64(l), x1 = UInt64(l + 1), x2 = UInt64(l + 2), x3 = UInt64(l + 3)
                var x4 = UInt64(l + 4), x5 = UInt64(l + 5), x6 = UInt64(l + 6), x7 = UInt64(l + 7)
                for i in 0..<n {
                    let b = UInt64(bytes[i])
                    x0 = (x0 ^ b) &* FNV1a.prime; x1 = (x1 ^ b) &* FNV1a.prime
                    x2 = (x2 ^ b) &* FNV1a.prime; x3 = (x3 ^ b) &* FNV1a.prime
                    x4 = (x4 ^ b) &* FNV1a.prime; x5 = (x5 ^ b) &* FNV1a.prime
                    x6 = (x6 ^ b) &* FNV1a.prime; x7 = (x7 ^ b) &* FNV1a.prime
                }
                let base = UInt64(l)
                t[l] = x0 &- base &* pk
                t[l + 1] = x1 &- (base + 1) &* pk
                t[l + 2] = x2 &- (base + 2) &* pk
                t[l + 3] = x3 &- (base + 3) &* pk
                t[l + 4] = x4 &- (base + 4) &* pk
                t[l + 5] = x5 &- (base + 5) &* pk
                t[l + 6] = x6 &- (base + 6) &* pk
                t[l + 7] = x7 &- (base + 7) &* pk
                l += 8
            }
        }
        powers[slot] = pk
        ready[slot] = true
    }
}
