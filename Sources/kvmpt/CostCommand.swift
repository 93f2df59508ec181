import ArgumentParser
import KVMPageTable

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `kvmpt cost`: page vs block vs fault mapping of device MMIO, each torn
/// down per entry, with range invalidations, or VM-wide.
struct Cost: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Quantify block mappings for device MMIO: page/block/fault mapping x per-entry/range/vm-wide teardown.",
        discussion: """
            Maps SIZE bytes of device memory at IPA A (backed by PA P) with each mapping strategy, \
            tears it down with each teardown strategy, and prints what the library's operations \
            issued (descriptors, table pages, faults, TLBIs by kind, cache maintenance), the \
            library's own wall time (median of --runs), and a modelled hardware time.

            mapping:   page       kvm_phys_addr_ioremap: a map per page
                       block      the 2021 RFC: largest block IPA/PA allow
                       fault      a stage-2 fault per unit (user_mem_abort)
            teardown:  per-entry  unmap_stage2_range: a TLBI per entry
                       range      the same with TLBIRANGE + FWB: range TLBIs
                       vm-wide    stage2_destroy + one VMID-wide TLBI

            Modelled time = tlbiIPA*(tlbi+2*dsb) + tlbiRange*(tlbi-range+2*dsb) + \
            tlbiVMID*(tlbi-vmid+dsb) + faults*fault + cmo bytes/4K*cmo-per-page. Defaults: \
            tlbi=0.5us tlbi-range=0.5us tlbi-vmid=0.5us dsb=1us fault=5us cmo-per-page=0.25us \
            (assumptions, see the DocC article "Block mappings for device MMIO").
            """
    )

    @Option(name: .long, help: "Region size: decimal or 0x hex, optional K/M/G/T suffix.")
    var size: String

    @Option(name: .long, help: "Guest IPA of the region.")
    var ipa: String = "0x100000000"

    @Option(name: .long, help: "Host PA of the device.")
    var pa: String = "0x800000000"

    @Option(name: .long, help: "Userspace address of the device mapping, for the fault strategy (default: congruent with the PA).")
    var hva: String?

    @Option(name: .long, help: "Granule: 4K, 16K or 64K.")
    var granule: String = "4K"

    @Option(name: .customLong("ia-bits"), help: "IPA size in bits.")
    var iaBits: Int = 40

    @Flag(name: .long, help: "The CPU has FEAT_S2FWB.")
    var fwb = false

    @Flag(name: .customLong("tlbi-range"), help: "The CPU has FEAT_TLBIRANGE.")
    var tlbiRange = false

    @Flag(name: .long, help: "FEAT_LPA2 52-bit descriptors (4K/16K).")
    var lpa2 = false

    @Flag(name: .long, help: "Map the device read-only.")
    var ro = false

    @Option(name: .long, help: "Comma-separated mapping strategies to run (page,block,fault).")
    var mappings: String = "page,block,fault"

    @Option(name: .long, help: "Comma-separated teardown strategies to run (per-entry,range,vm-wide).")
    var teardowns: String = "per-entry,range,vm-wide"

    @Option(name: .long, help: "Runs per combination; the measured time is their median.")
    var runs: Int = 3

    @Option(name: .long, help: "Latencies, key=value,... (tlbi, tlbi-range, tlbi-vmid, dsb, fault, cmo-per-page); units ns/us/ms/s, bare numbers are microseconds.")
    var latency: String?

    @Option(name: .customLong("calibrate-to"), help: "Scale every latency so page/per-entry takes this many seconds (the RFC: 1800).")
    var calibrateTo: Double?

    @Flag(name: .long, help: "Print a JSON array instead of the table.")
    var json = false

    @Option(name: .long, help: "Also write the picture as SVG to this file.")
    var svg: String?

    func run() throws {
        let report: CostReport
        do throws(CostError) {
            report = try makeReport()
        } catch {
            Output.err("kvmpt cost: \(error)\n")
            throw ExitCode(2)
        }
        if let svg {
            let text = CostSVG.render(report)
            if let problem = AtomicFile.write(text, to: svg) {
                Output.err("kvmpt cost: cannot write '\(svg)': \(problem)\n")
                throw ExitCode(1)
            }
        }
        Output.out(json ? report.json() : report.table())
        guard Output.flush() else { throw ExitCode(1) }
    }

    private func number(_ text: String, _ name: String) throws(CostError) -> UInt64 {
        guard let v = CostConfiguration.parseNumber(text) else {
            throw CostError("\(name) '\(text)' is not a number (decimal or 0x hex, optional K/M/G/T)")
        }
        return v
    }

    private func list<T: RawRepresentable>(_ text: String, _ name: String) throws(CostError) -> [T] where T.RawValue == String {
        var out: [T] = []
        for word in text.split(separator: ",") {
            guard let v = T(rawValue: String(word)) else { throw CostError("unknown \(name) strategy '\(word)'") }
            out.append(v)
        }
        guard !out.isEmpty else { throw CostError("no \(name) strategy given") }
        return out
    }

    func makeReport() throws(CostError) -> CostReport {
        guard let g = Granule(name: granule) else { throw CostError("--granule must be 4K, 16K or 64K, not '\(granule)'") }
        var features: Stage2Features = []
        if fwb { features.insert(.fwb) }
        if tlbiRange { features.insert(.tlbiRange) }
        let configuration = CostConfiguration(
            granule: g, iaBits: iaBits, lpa2: lpa2, features: features,
            ipa: try number(ipa, "--ipa"), pa: try number(pa, "--pa"), size: try number(size, "--size"),
            hva: try hva.map { h throws(CostError) in try number(h, "--hva") }, writable: !ro)
        let model = try latency.map { l throws(CostError) in try LatencyModel(parsing: l) } ?? .default
        let experiment = CostExperiment(configuration, mappings: try list(mappings, "mapping"),
                                        teardowns: try list(teardowns, "teardown"), runs: runs)
        let results = try experiment.run()
        return try CostReport(results, latency: model, calibrateTo: calibrateTo)
    }
}

/// Writes a file whole or not at all: a temporary file beside it, synced,
/// then renamed over the target.
enum AtomicFile {
    /// nil on success, else what went wrong.
    static func write(_ text: String, to path: String) -> String? {
        let temp = path + ".tmp-\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        var bytes = Array(text.utf8)
        var done = 0
        var failure: String?
        bytes.withUnsafeMutableBytes { buf in
            while done < buf.count {
                let n = Glibc.write(fd, buf.baseAddress! + done, buf.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = String(cString: strerror(errno))
                    return
                }
                done += n
            }
        }
        if failure == nil, fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
        if close(fd) != 0, failure == nil { failure = String(cString: strerror(errno)) }
        if failure == nil, rename(temp, path) != 0 { failure = String(cString: strerror(errno)) }
        if failure != nil { unlink(temp) }
        return failure
    }
}
