// The kvmpt benchmarks (issue 5). See ../../README.md for what each measures.
//
// Every benchmark body does its work once per iteration (scaling factor 1)
// and brackets the part it measures with start/stopMeasurement, so table
// construction and teardown stay out of the numbers unless the workload
// itself includes them. Time per entry is reported as custom `ps/entry`
// metrics (picoseconds, as whole numbers); allocations as the interposer's
// `mallocCountTotal`; memory as the exact per-iteration `peak RSS delta`.

import Benchmark
import Foundation
import KVMPageTable

let benchmarks: @Sendable () -> Void = {
    // A 2-core machine shared with others: a few iterations each, capped in
    // time, keep a full run within a few minutes.
    Benchmark.defaultConfiguration = .init(
        metrics: baseMetrics,
        timeUnits: .milliseconds,
        units: rawUnits(baseMetrics),
        warmupIterations: 1,
        maxDuration: .seconds(2),
        maxIterations: 10
    )

    // The harness's own allocations inside a measured region: the floor
    // that "allocates nothing" is compared against.
    Benchmark("harness baseline (empty measured region)",
              configuration: .init(metrics: [.mallocCountTotal], units: rawUnits([.mallocCountTotal]),
                                   maxIterations: 100)) { benchmark in
        benchmark.startMeasurement()
        benchmark.stopMeasurement()
    }

    registerWorkloads()
    registerFloor()
    registerViews()
    registerMapScaling()
    registerDecode()
}

// MARK: - The two workloads of issue 5, as library calls

func registerWorkloads() {
    let metrics = baseMetrics + [.perEntry, .mapPerEntry, .summaryPerEntry, .unmapPerEntry,
                                 .peakRSSDelta, .tablePages]
    let config = Benchmark.Configuration(metrics: metrics, timeUnits: .milliseconds, units: rawUnits(metrics))

    // A: `ioremap 0x100000000 8G 0x800000000`, summary, unmap, summary:
    // 2 Mi page-sized map calls, each walking from the root.
    Benchmark("A ioremap 8G pages+summary+unmap+summary", configuration: config) { benchmark in
        runWorkload(benchmark, entries: Workload.aEntries, size: Workload.aSize,
                    expected: Workload.aSummary) { t in
            try t.ioremap(Workload.ipa, size: Workload.aSize, to: Workload.aPhys, writable: true)
        }
    }

    // B: `map 0x100000000 16G 0x800001000 rw`, summary, unmap, summary:
    // one map call installing 4 Mi pages (dcache maintenance per page).
    Benchmark("B map 16G rw+summary+unmap+summary", configuration: config) { benchmark in
        runWorkload(benchmark, entries: Workload.bEntries, size: Workload.bSize,
                    expected: Workload.bSummary) { t in
            try t.map(Workload.ipa, size: Workload.bSize, to: Workload.bPhys, prot: [.read, .write])
        }
    }
}

/// One run of a workload script's four statements, table creation included
/// (as in `kvmpt run`), with each step timed and both summaries checked
/// against the kernel's.
func runWorkload(_ benchmark: Benchmark, entries: Int, size: UInt64, expected: Workload.Expected,
                 map: (Stage2PageTable) throws -> Void) {
    let rssBefore = ProcessMemory.resetPeak()
    benchmark.startMeasurement()
    let t0 = nowNanoseconds()
    let table = makeTable()
    var failure: String?
    do {
        try map(table)
    } catch {
        failure = "map failed: \(error)"
    }
    let t1 = nowNanoseconds()
    let full = table.walker.summary()
    let t2 = nowNanoseconds()
    do {
        try table.unmap(Workload.ipa, size: size)
    } catch {
        failure = failure ?? "unmap failed: \(error)"
    }
    let t3 = nowNanoseconds()
    let empty = table.walker.summary()
    let t4 = nowNanoseconds()
    benchmark.stopMeasurement()

    benchmark.measurement(.perEntry, picosecondsPerEntry(t4 - t0, entries))
    benchmark.measurement(.mapPerEntry, picosecondsPerEntry(t1 - t0, entries))
    benchmark.measurement(.summaryPerEntry, picosecondsPerEntry(t2 - t1, entries))
    benchmark.measurement(.unmapPerEntry, picosecondsPerEntry(t3 - t2, entries))
    benchmark.measurement(.peakRSSDelta, ProcessMemory.peak() - rssBefore)
    benchmark.measurement(.tablePages, table.arena.highWaterPages)
    if let why = failure ?? expected.mismatch(full) ?? Workload.emptySummary.mismatch(empty) {
        benchmark.error(why)
    }
    withExtendedLifetime(table) {}
}

// MARK: - The memory floor

func registerFloor() {
    let metrics = baseMetrics + [.perEntry, .peakRSSDelta]
    let config = Benchmark.Configuration(metrics: metrics, timeUnits: .milliseconds, units: rawUnits(metrics))

    // floor.c in Swift, at each workload's size: allocate and zero the leaf
    // pages, write one descriptor per page, read and clear them, free.
    for (name, size) in [("A 8G", Workload.aSize), ("B 16G", Workload.bSize)] {
        Benchmark("floor \(name) (floor.c in Swift)", configuration: config) { benchmark in
            let g = floorGranule
            // Start from a trimmed heap, as floor.c starts from a fresh
            // process: otherwise whether the pages freed by the previous
            // iteration are still resident (no page faults) depends on
            // glibc's trim heuristics.
            trimHeap()
            let rssBefore = ProcessMemory.resetPeak()
            benchmark.startMeasurement()
            let t0 = nowNanoseconds()
            let r = memoryFloor(granule: g, mapped: size)
            let t1 = nowNanoseconds()
            benchmark.stopMeasurement()
            blackHole(r)
            benchmark.measurement(.perEntry, picosecondsPerEntry(t1 - t0, Int(size / g)))
            benchmark.measurement(.peakRSSDelta, ProcessMemory.peak() - rssBefore)
        }
    }
}

// MARK: - Block ioremap, full walk, dump + hash, summary

func registerViews() {
    let blockMetrics = baseMetrics + [.perEntry, .peakRSSDelta]
    // Each iteration is microseconds: allow many.
    let blockConfig = Benchmark.Configuration(metrics: blockMetrics, timeUnits: .nanoseconds,
                                              units: rawUnits(blockMetrics),
                                              maxDuration: .seconds(1), maxIterations: 2000)

    // ioremapBlocks of 8 GiB at a 1 GiB-aligned IPA and PA: eight 1 GiB
    // blocks at level 1, no table page. The unmap that empties the table
    // again is outside the measurement.
    Benchmark("ioremapBlocks 8G (8 L1 blocks)", configuration: blockConfig) { benchmark, table in
        let rssBefore = ProcessMemory.resetPeak()
        benchmark.startMeasurement()
        let t0 = nowNanoseconds()
        var failure: String?
        do {
            try table.ioremapBlocks(Workload.ipa, size: Workload.aSize, to: Workload.aPhys, writable: true)
        } catch {
            failure = "ioremapBlocks failed: \(error)"
        }
        let t1 = nowNanoseconds()
        benchmark.stopMeasurement()
        benchmark.measurement(.peakRSSDelta, ProcessMemory.peak() - rssBefore)
        benchmark.measurement(.perEntry, picosecondsPerEntry(t1 - t0, 8))
        let s = table.walker.summary()
        if let why = failure ?? (s.tables == 2 && s.leaves.first?.count == 8 ? nil : "unexpected summary \(s)") {
            benchmark.error(why)
        }
        do { try table.unmap(Workload.ipa, size: Workload.aSize) } catch { benchmark.error("unmap failed: \(error)") }
    } setup: {
        makeTable()
    }

    let walkMetrics = baseMetrics + [.perEntry, .peakRSSDelta]
    let walkConfig = Benchmark.Configuration(metrics: walkMetrics, timeUnits: .milliseconds,
                                             units: rawUnits(walkMetrics))

    // The walker alone: visit every leaf of B's 16 GiB table (4 Mi pages
    // under 8210 tables) with a visitor that only counts valid leaves.
    Benchmark("walk 16G table, count leaves", configuration: walkConfig) { benchmark, table in
        var counter = LeafCounter()
        let rssBefore = ProcessMemory.resetPeak()
        benchmark.startMeasurement()
        let t0 = nowNanoseconds()
        let r = table.walker.walk(0, size: table.geometry.inputLimit, visitor: &counter)
        let t1 = nowNanoseconds()
        benchmark.stopMeasurement()
        benchmark.measurement(.peakRSSDelta, ProcessMemory.peak() - rssBefore)
        benchmark.measurement(.perEntry, picosecondsPerEntry(t1 - t0, Workload.bEntries))
        if r != 0 || counter.count != Workload.bEntries {
            benchmark.error("walk returned \(r), counted \(counter.count) leaves, want \(Workload.bEntries)")
        }
    } setup: {
        makeMapped16GiB()
    }

    // The canonical dump, each line formatted and fed to a plain streaming
    // FNV-1a (no memo): what `summary` computes, the long way.
    Benchmark("canonicalDump into FNV1a, 16G table", configuration: walkConfig) { benchmark, table in
        let rssBefore = ProcessMemory.resetPeak()
        benchmark.startMeasurement()
        let t0 = nowNanoseconds()
        let d = table.walker.canonicalDump(into: FNV1a())
        let t1 = nowNanoseconds()
        benchmark.stopMeasurement()
        benchmark.measurement(.peakRSSDelta, ProcessMemory.peak() - rssBefore)
        benchmark.measurement(.perEntry, picosecondsPerEntry(t1 - t0, Workload.bEntries))
        if d.code != 0 || d.sink.value != Workload.bSummary.fnv1a {
            benchmark.error("dump returned \(d.code), fnv1a 0x\(String(d.sink.value, radix: 16)), want 0x\(String(Workload.bSummary.fnv1a, radix: 16))")
        }
    } setup: {
        makeMapped16GiB()
    }

    // `summary`: the same dump hashed by the library's memoising hasher.
    Benchmark("summary, 16G table", configuration: walkConfig) { benchmark, table in
        let rssBefore = ProcessMemory.resetPeak()
        benchmark.startMeasurement()
        let t0 = nowNanoseconds()
        let s = table.walker.summary()
        let t1 = nowNanoseconds()
        benchmark.stopMeasurement()
        benchmark.measurement(.peakRSSDelta, ProcessMemory.peak() - rssBefore)
        benchmark.measurement(.perEntry, picosecondsPerEntry(t1 - t0, Workload.bEntries))
        if let why = Workload.bSummary.mismatch(s) { benchmark.error(why) }
    } setup: {
        makeMapped16GiB()
    }
}

// MARK: - Map cost against size

func registerMapScaling() {
    let metrics = baseMetrics + [.perEntry, .peakRSSDelta, .tablePages]
    let config = Benchmark.Configuration(metrics: metrics, timeUnits: .milliseconds, units: rawUnits(metrics),
                                         maxDuration: .seconds(3), maxIterations: 5)

    // One `map ... rw` of 1, 4, 16 and 64 GiB at a page-aligned-only PA, so
    // every entry is a page: ps/entry should stay flat (linear cost), and
    // table pages grow by 1/512 of the entries.
    for gib in [1, 4, 16, 64] as [UInt64] {
        let size = gib << 30
        let entries = Int(size / Workload.granule)
        Benchmark("map \(gib)G pages rw", configuration: config) { benchmark in
            let table = makeTable()
            let rssBefore = ProcessMemory.resetPeak()
            benchmark.startMeasurement()
            let t0 = nowNanoseconds()
            var failure: String?
            do {
                try table.map(Workload.ipa, size: size, to: Workload.bPhys, prot: [.read, .write])
            } catch {
                failure = "map failed: \(error)"
            }
            let t1 = nowNanoseconds()
            benchmark.stopMeasurement()
            benchmark.measurement(.perEntry, picosecondsPerEntry(t1 - t0, entries))
            benchmark.measurement(.peakRSSDelta, ProcessMemory.peak() - rssBefore)
            benchmark.measurement(.tablePages, table.arena.highWaterPages)
            if let failure { benchmark.error(failure) }
            withExtendedLifetime(table) {}
        }
    }
}

// MARK: - Decode of a saved image

func registerDecode() {
    let metrics = baseMetrics + [.perEntry, .peakRSSDelta]
    let config = Benchmark.Configuration(metrics: metrics, timeUnits: .milliseconds, units: rawUnits(metrics),
                                         maxDuration: .seconds(5), maxIterations: 10)

    // Decode of a saved image of the 16 GiB table: open (mmap the image,
    // read the .regs sidecar, check the registers and the root) and a full
    // guarded walk computing `summary`. Only the pages walked are touched.
    Benchmark("decode 16G image: open + summary", configuration: config) { benchmark, path in
        let rssBefore = ProcessMemory.resetPeak()
        benchmark.startMeasurement()
        let t0 = nowNanoseconds()
        var failure: String?
        do {
            let (view, _) = try TableInspector.open(image: path, sidecar: path + ".regs", overrides: ImageRegisters())
            let s = view.walker.summary()
            if let why = Workload.bSummary.mismatch(s) { failure = why }
        } catch {
            failure = "decode failed: \(error)"
        }
        let t1 = nowNanoseconds()
        benchmark.stopMeasurement()
        benchmark.measurement(.peakRSSDelta, ProcessMemory.peak() - rssBefore)
        benchmark.measurement(.perEntry, picosecondsPerEntry(t1 - t0, Workload.bEntries))
        if let failure { benchmark.error(failure) }
    } setup: {
        let table = makeMapped16GiB()
        // One fixed name, overwritten by each run (about 33 MB).
        let path = (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp") + "/kvmpt-bench-16g.img"
        do {
            try ImageWriter.save(table, to: path)
        } catch {
            fatalError("saving the 16G image failed: \(error)")
        }
        return path
    }
}
