import Testing
@testable import KVMPageTable

/// The memoised dump hash must equal plain FNV-1a of the formatted text.
@Suite struct DumpHasherTests {
    /// A small deterministic generator (SplitMix64).
    struct Rng {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
    }

    func reference(_ lines: [(Int8, UInt64, UInt64)]) -> UInt64 {
        var f = FNV1a()
        for (l, a, d) in lines { f.emit(level: l, address: a, descriptor: d) }
        return f.value
    }

    func memoised(_ lines: [(Int8, UInt64, UInt64)]) -> UInt64 {
        var h = DumpHasher()
        for (l, a, d) in lines { h.emit(level: l, address: a, descriptor: d) }
        return h.value
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8])
    func longRunsLikeRealTablesHashTheSame(seed: UInt64) {
        var rng = Rng(state: seed)
        var lines: [(Int8, UInt64, UInt64)] = []
        // Runs long enough to build tables, with the fields changing at
        // random points: level, high address bits, attributes, PA.
        for _ in 0..<40 {
            let level = Int8(Int(rng.next() % 5) - 1)
            var addr = rng.next() & 0x000f_ffff_ffff_f000
            var pte = rng.next() & 0xfff0_ffff_ffff_ffff
            let run = Int(rng.next() % 700)
            let stride: UInt64 = rng.next() % 3 == 0 ? 0x1000 : 0x20_0000
            for _ in 0..<run {
                lines.append((level, addr, pte))
                addr &+= stride
                pte &+= stride
                if rng.next() % 97 == 0 { pte ^= rng.next() & 0xfff }
            }
        }
        #expect(memoised(lines) == reference(lines))
    }

    @Test func randomLinesHashTheSame() {
        var rng = Rng(state: 42)
        var lines: [(Int8, UInt64, UInt64)] = []
        for _ in 0..<5000 {
            lines.append((Int8(Int(rng.next() % 5) - 1), rng.next(), rng.next()))
        }
        #expect(memoised(lines) == reference(lines))
    }

    @Test func alternatingKeysAroundTheBuildThresholdHashTheSame() {
        var lines: [(Int8, UInt64, UInt64)] = []
        for i in 0..<4000 {
            let k = UInt64((i / (SegmentMemo.buildAfter - 1 + i % 3)) % 2)
            lines.append((3, 0x4000_0000 + k << 30 + UInt64(i) << 12, 0x0040_0000_8000_07ff + k << 40))
        }
        #expect(memoised(lines) == reference(lines))
    }

    @Test func emptyDumpIsTheOffsetBasis() {
        #expect(DumpHasher().value == 0xcbf2_9ce4_8422_2325)
    }
}
