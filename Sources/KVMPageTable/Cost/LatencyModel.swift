/// What the hardware side of an operation costs: a few latencies,
/// multiplied by the counts the library's operations recorded.
///
/// The modelled time of a mapping and teardown is
///
///     tlbiIPA   × (tlbi       + 2 × dsb)
///   + tlbiRange × (tlbi-range + 2 × dsb)
///   + tlbiVMID  × (tlbi-vmid  + 1 × dsb)
///   + faults    ×  fault
///   + (dcache + icache bytes) / 4 KiB × cmo-per-page
///
/// The DSB counts are those of the kernel's hyp helpers:
/// `__kvm_tlb_flush_vmid_ipa` and `__kvm_tlb_flush_vmid_range` each wait
/// twice for a broadcast invalidation to complete (`dsb(ish)` after the
/// stage-2 TLBI, again after `TLBI VMALLE1IS`), `__kvm_tlb_flush_vmid`
/// once. Table walking and descriptor writes are not modelled: they are
/// what ``CostMeasurement/measuredSeconds`` measures.
///
/// The defaults are stated assumptions for a many-core server, chosen for
/// their order of magnitude, not measured:
/// - `tlbi` 0.5 µs: issuing the two broadcast TLBIs of one
///   `__kvm_tlb_flush_vmid_ipa` plus switching to the guest's VMID and back
///   (system-register writes and ISBs).
/// - `tlbi-range` 0.5 µs and `tlbi-vmid` 0.5 µs: the same issue cost for
///   one range or VMID-wide call.
/// - `dsb` 1 µs: a `DSB ISH` after a broadcast invalidation waits until
///   every CPU in the inner-shareable domain has acknowledged it, which
///   takes on the order of a microsecond on large systems.
/// - `fault` 5 µs: a stage-2 abort taken to the host, `user_mem_abort`
///   (VMA lookup, PFN lookup, memcache top-up) and the return to the guest.
/// - `cmo-per-page` 0.25 µs: cleaning or invalidating 4 KiB by cache line
///   (64 lines of 64 bytes at about 4 ns each).
///
/// Absolute times depend on the machine; use ``calibrated(toSeconds:for:)``
/// to scale the model to one known time (the 2021 RFC reported 30 minutes
/// for unmapping 8 GiB page by page on an FPGA) and read the other rows
/// relative to it.
public struct LatencyModel: Hashable, Sendable, CustomStringConvertible {
    /// Seconds to issue one per-entry invalidation (`__kvm_tlb_flush_vmid_ipa`), DSBs aside.
    public var tlbi: Double
    /// Seconds to issue one range invalidation (`__kvm_tlb_flush_vmid_range`), DSBs aside.
    public var tlbiRange: Double
    /// Seconds to issue one VMID-wide invalidation (`__kvm_tlb_flush_vmid`), DSB aside.
    public var tlbiVMID: Double
    /// Seconds one `DSB ISH` waits for a broadcast invalidation.
    public var dsb: Double
    /// Seconds to take and resolve one stage-2 fault.
    public var fault: Double
    /// Seconds of cache maintenance per 4 KiB cleaned or invalidated.
    public var cmoPerPage: Double

    /// A model with the given latencies, in seconds.
    public init(tlbi: Double, tlbiRange: Double, tlbiVMID: Double, dsb: Double,
                fault: Double, cmoPerPage: Double) {
        self.tlbi = tlbi
        self.tlbiRange = tlbiRange
        self.tlbiVMID = tlbiVMID
        self.dsb = dsb
        self.fault = fault
        self.cmoPerPage = cmoPerPage
    }

    /// The documented default assumptions.
    public static let `default` = LatencyModel(tlbi: 0.5e-6, tlbiRange: 0.5e-6, tlbiVMID: 0.5e-6,
                                               dsb: 1e-6, fault: 5e-6, cmoPerPage: 0.25e-6)

    /// `DSB ISH` waits per call of each invalidation helper.
    public static let dsbPerTLBI = (ipa: 2, range: 2, vmid: 1)

    /// The bytes one `cmo-per-page` unit covers.
    public static let cmoPageBytes: UInt64 = 4096

    /// The keys of ``init(parsing:base:)``, in the order ``description`` prints them.
    public static let keys = ["tlbi", "tlbi-range", "tlbi-vmid", "dsb", "fault", "cmo-per-page"]

    /// Modelled seconds for what an experiment issued.
    public func seconds(for m: Maintenance, faults: Int) -> Double {
        let d = Self.dsbPerTLBI
        var s = Double(m.tlbiIPA) * (tlbi + Double(d.ipa) * dsb)
        s += Double(m.tlbiRange) * (tlbiRange + Double(d.range) * dsb)
        s += Double(m.tlbiVMID) * (tlbiVMID + Double(d.vmid) * dsb)
        s += Double(faults) * fault
        let cmoBytes = Double(m.dcacheBytes) + Double(m.icacheBytes)
        s += cmoBytes / Double(Self.cmoPageBytes) * cmoPerPage
        return s
    }

    /// Every latency multiplied by `factor`.
    public func scaled(by factor: Double) -> LatencyModel {
        LatencyModel(tlbi: tlbi * factor, tlbiRange: tlbiRange * factor, tlbiVMID: tlbiVMID * factor,
                     dsb: dsb * factor, fault: fault * factor, cmoPerPage: cmoPerPage * factor)
    }

    /// This model scaled so that `measurement` takes `seconds`, every
    /// latency by the same factor (their ratios are kept).
    public func calibrated(toSeconds seconds: Double, for measurement: CostMeasurement) throws(CostError) -> LatencyModel {
        guard seconds.isFinite, seconds > 0 else {
            throw CostError("--calibrate-to needs a positive number of seconds")
        }
        let now = self.seconds(for: measurement.maintenance, faults: measurement.faults)
        guard now > 0 else {
            throw CostError("cannot calibrate: \(measurement.mapping)/\(measurement.teardown) costs nothing in this model")
        }
        return scaled(by: seconds / now)
    }

    /// Parses `key=value,…` over `base`. Keys are those of ``keys``; a value
    /// is a number with an optional unit `s`, `ms`, `us` (or `µs`) or `ns`,
    /// and a bare number means microseconds.
    public init(parsing spec: String, base: LatencyModel = .default) throws(CostError) {
        self = base
        for item in spec.split(separator: ",", omittingEmptySubsequences: true) {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw CostError("latency item '\(item)' is not key=value") }
            let key = parts[0].trimmingSpaces, text = parts[1].trimmingSpaces
            guard let value = Self.parseDuration(text) else {
                throw CostError("latency '\(key)': '\(text)' is not a duration (like 0.5us, 2e-6s, 800ns)")
            }
            switch key {
            case "tlbi": tlbi = value
            case "tlbi-range": tlbiRange = value
            case "tlbi-vmid": tlbiVMID = value
            case "dsb": dsb = value
            case "fault": fault = value
            case "cmo-per-page": cmoPerPage = value
            default:
                throw CostError("unknown latency '\(key)' (known: \(Self.keys.joined(separator: ", ")))")
            }
        }
    }

    /// Seconds from `1.5us`, `800ns`, `2ms`, `1e-6s`; a bare number is microseconds.
    static func parseDuration(_ text: String) -> Double? {
        let units: [(String, Double)] = [("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1)]
        var number = text
        var scale = 1e-6
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            number = String(text.dropLast(suffix.count))
            scale = factor
            break
        }
        guard let v = Double(number), v.isFinite, v >= 0 else { return nil }
        return v * scale
    }

    /// `tlbi=0.5us tlbi-range=0.5us …`, each in the unit that reads best.
    public var description: String {
        let values = [tlbi, tlbiRange, tlbiVMID, dsb, fault, cmoPerPage]
        return zip(Self.keys, values).map { "\($0)=\(CostFormat.duration($1))" }.joined(separator: " ")
    }
}

extension Substring {
    var trimmingSpaces: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
