// What the benchmarks share: the workloads of issue 5 as library calls,
// the memory floor in Swift, a leaf-counting visitor, the custom metrics
// and a precise per-iteration peak-RSS probe.

import Benchmark
import KVMPageTable

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - The workloads

/// Addresses and sizes of issue 5's two workloads (4K granule, 40-bit IPA).
enum Workload {
    static let granule: UInt64 = 4096
    /// Both workloads start at 4 GiB of IPA.
    static let ipa: UInt64 = 0x1_0000_0000

    /// A: `ioremap 0x100000000 8G 0x800000000` (one page-sized map per page).
    static let aSize: UInt64 = 8 << 30
    static let aPhys: UInt64 = 0x8_0000_0000
    static var aEntries: Int { Int(aSize / granule) }

    /// B: `map 0x100000000 16G 0x800001000 rw` (PA only page-aligned, so pages).
    static let bSize: UInt64 = 16 << 30
    static let bPhys: UInt64 = 0x8_0000_1000
    static var bEntries: Int { Int(bSize / granule) }

    /// Table pages live at the peak (root pages included), from the kernel's
    /// transcript: the bar for peak memory is these × 1.25 + 8 MiB.
    static let aTablePages = 4106
    static let bTablePages = 8210

    /// The `summary` lines the kernel prints after each map (tables, L3
    /// leaves, fnv1a), and after the unmap (the two empty root pages).
    static let aSummary = Expected(tables: 4106, pages: 2_097_152, fnv1a: 0x6eeb_0eb4_a4e0_255b)
    static let bSummary = Expected(tables: 8210, pages: 4_194_304, fnv1a: 0xb9c6_2325_e290_3ab0)
    static let emptySummary = Expected(tables: 2, pages: 0, fnv1a: 0xcbf2_9ce4_8422_2325)

    struct Expected {
        let tables: Int
        let pages: Int
        let fnv1a: UInt64

        /// Nil when `s` matches, else why not.
        func mismatch(_ s: TableSummary) -> String? {
            let pages = s.leaves.last?.count ?? -1
            if s.tables == tables, pages == self.pages, s.fnv1a == fnv1a { return nil }
            return "unexpected summary: \(s) (want tables=\(tables) L3=\(self.pages) fnv1a=0x\(String(fnv1a, radix: 16)))"
        }
    }
}

/// An empty stage-2 table, 4K granule, 40-bit IPA (two concatenated roots).
func makeTable() -> Stage2PageTable {
    do {
        return try Stage2PageTable(geometry: .stage2(granule: .size4K, iaBits: 40, lpa2: false))
    } catch {
        fatalError("cannot make a stage-2 table: \(error)")
    }
}

/// A table holding workload B's 16 GiB of pages (8210 table pages).
func makeMapped16GiB() -> Stage2PageTable {
    let t = makeTable()
    do {
        try t.map(Workload.ipa, size: Workload.bSize, to: Workload.bPhys, prot: [.read, .write])
    } catch {
        fatalError("map 16G failed: \(error)")
    }
    return t
}

// MARK: - Timing

/// Nanoseconds since an arbitrary origin (CLOCK_MONOTONIC, via the vDSO).
@inline(__always)
func nowNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Picoseconds per entry, the unit of the `ps/entry` metrics.
@inline(__always)
func picosecondsPerEntry(_ nanoseconds: UInt64, _ entries: Int) -> Int {
    entries > 0 ? Int(nanoseconds &* 1000 / UInt64(entries)) : 0
}

// MARK: - The memory floor, in Swift

/// Read through a global so that the optimiser cannot fold the granule into
/// the loop: floor.c takes it from argv, and so divides at run time too.
nonisolated(unsafe) var floorGranule: UInt64 = 4096

/// /work/shared/bench/floor.c, line for line: allocate and zero the leaf
/// table pages, write one descriptor per page, read and clear them again,
/// free the pages. Returns the low bit of the sum so nothing is dead code.
@inline(never)
func memoryFloor(granule g: UInt64, mapped bytes: UInt64) -> UInt64 {
    let n = bytes / g, per = g / 8, pages = (n + per - 1) / per
    let tab = UnsafeMutablePointer<UnsafeMutablePointer<UInt64>>.allocate(capacity: Int(pages))
    for p in 0..<Int(pages) {
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, Int(g), Int(g)) == 0, let raw else { fatalError("posix_memalign") }
        memset(raw, 0, Int(g))
        tab[p] = raw.assumingMemoryBound(to: UInt64.self)
    }
    var pa: UInt64 = 0x8_0000_0000
    var i: UInt64 = 0
    while i < n {
        tab[Int(i / per)][Int(i % per)] = pa | 0x4c7                // device RW page, AF
        i &+= 1
        pa &+= g
    }
    var sum: UInt64 = 0
    i = 0
    while i < n {                                                   // unmap: read, clear
        sum &+= tab[Int(i / per)][Int(i % per)]
        tab[Int(i / per)][Int(i % per)] = 0
        i &+= 1
    }
    for p in 0..<Int(pages) { free(tab[p]) }
    tab.deallocate()
    return sum & 1
}

/// Returns the free heap to the OS: glibc's `malloc_trim(0)`, looked up at
/// run time (its header is not part of the Glibc module); a no-op elsewhere.
func trimHeap() {
    typealias Trim = @convention(c) (Int) -> Int32
    guard let symbol = dlsym(nil, "malloc_trim") else { return }
    _ = unsafeBitCast(symbol, to: Trim.self)(0)
}

// MARK: - A full walk

/// Counts valid leaves: the cheapest visitor, so its benchmark times the
/// walker itself.
struct LeafCounter: Visitor {
    var count = 0
    var flags: WalkFlags { .leaf }

    @inline(__always)
    mutating func visit(_ ctx: inout VisitContext, _ visit: Visit) -> Int32 {
        if Descriptor(ctx.old).isValid { count &+= 1 }
        return 0
    }
}

// MARK: - Peak memory of one iteration

/// Linux's per-process resident high-water mark (`VmHWM`), reset per
/// iteration through `/proc/self/clear_refs` so that each sample is that
/// iteration's own peak, exactly (the framework's `peakMemoryResident`
/// samples `statm` every ~10 ms and can miss a short peak).
enum ProcessMemory {
    /// Resets `VmHWM` to the current RSS; returns the current RSS in KiB.
    static func resetPeak() -> Int {
        let fd = open("/proc/self/clear_refs", O_WRONLY)
        if fd >= 0 {
            _ = write(fd, "5", 1)
            close(fd)
        }
        return kibibytes("VmRSS:")
    }

    /// The resident high-water mark in KiB since the last reset.
    static func peak() -> Int { kibibytes("VmHWM:") }

    /// A `kB` field of /proc/self/status, or 0.
    static func kibibytes(_ field: String) -> Int {
        guard let f = fopen("/proc/self/status", "r") else { return 0 }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), f) != nil {
            let s = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if s.hasPrefix(field) {
                // "VmRSS:\t   13544 kB\n"
                let number = s.dropFirst(field.count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first
                return number.flatMap { Int($0) } ?? 0
            }
        }
        return 0
    }
}

// MARK: - Metrics

extension BenchmarkMetric {
    /// Whole measured region, per entry mapped (or walked).
    static var perEntry: BenchmarkMetric { .custom("ps/entry (total)", useScalingFactor: false) }
    /// The map (or ioremap) step alone, per entry.
    static var mapPerEntry: BenchmarkMetric { .custom("ps/entry map", useScalingFactor: false) }
    /// The first `summary` (full table) alone, per entry.
    static var summaryPerEntry: BenchmarkMetric { .custom("ps/entry summary", useScalingFactor: false) }
    /// The unmap step alone, per entry.
    static var unmapPerEntry: BenchmarkMetric { .custom("ps/entry unmap", useScalingFactor: false) }
    /// The iteration's exact resident peak above the RSS it started with.
    static var peakRSSDelta: BenchmarkMetric { .custom("peak RSS delta (KiB)", useScalingFactor: false) }
    /// Table pages at the high-water mark (root pages included).
    static var tablePages: BenchmarkMetric { .custom("table pages", useScalingFactor: false) }
}

/// Metrics every benchmark reports. Deliberately no framework metric that
/// needs the OS-stats sampling thread (`peakMemoryResident`, CPU, syscalls):
/// that thread allocates while it samples, and the interposer counts every
/// thread's mallocs, which would hide whether the library allocates. Peak
/// memory comes from `peakRSSDelta` instead.
let baseMetrics: [BenchmarkMetric] = [.wallClock, .mallocCountTotal]

/// Units for the printed tables: custom metrics and malloc counts as raw
/// numbers (no K/M rescaling).
func rawUnits(_ metrics: [BenchmarkMetric]) -> [BenchmarkMetric: BenchmarkUnits] {
    var u: [BenchmarkMetric: BenchmarkUnits] = [:]
    for m in metrics {
        switch m {
        case .wallClock: break
        default: u[m] = .count
        }
    }
    return u
}
