/// Hex formatting as transcripts print numbers.
public enum Hex {
    /// `0x` and lower-case hex without leading zeros (`0x0` for zero).
    public static func short(_ value: UInt64) -> String {
        "0x" + String(value, radix: 16)
    }

    /// `0x` and exactly 16 lower-case hex digits.
    public static func padded(_ value: UInt64) -> String {
        var bytes = [UInt8](repeating: 0, count: 18)
        bytes.withUnsafeMutableBufferPointer { _ = write16(value, into: $0.baseAddress!, prefixed: true) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Writes `0x` (if `prefixed`) and 16 hex digits; returns bytes written.
    @inlinable @discardableResult
    public static func write16(_ value: UInt64, into p: UnsafeMutablePointer<UInt8>, prefixed: Bool) -> Int {
        var i = 0
        if prefixed { p[0] = 0x30; p[1] = 0x78; i = 2 }
        var v = value
        var k = 15
        while k >= 0 {
            p[i + k] = digit(v & 0xf)
            v &>>= 4
            k -= 1
        }
        return i + 16
    }

    /// The lower-case ASCII hex digit of a nibble.
    @inlinable @inline(__always)
    public static func digit(_ nibble: UInt64) -> UInt8 {
        let n = UInt8(truncatingIfNeeded: nibble)
        return n < 10 ? 0x30 &+ n : 0x57 &+ n
    }
}
