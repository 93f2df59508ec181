/// Cost results with modelled times, ready to print as a table, JSON or SVG.
public struct CostReport: Sendable {
    /// One printed row: a measurement and its modelled time.
    public struct Row: Sendable {
        /// What the operations issued and how long the library took.
        public let measurement: CostMeasurement
        /// The latency model's time for what was issued.
        public let modelledSeconds: Double

        /// How the region was mapped.
        public var mapping: MappingStrategy { measurement.mapping }
        /// How it was torn down.
        public var teardown: TeardownStrategy { measurement.teardown }
        /// Mapping and teardown maintenance together.
        public var maintenance: Maintenance { measurement.maintenance }
    }

    /// The experiment's results.
    public let results: CostResults
    /// The latency model in effect (after calibration).
    public let latency: LatencyModel
    /// The time the model was calibrated to, if it was.
    public let calibratedTo: Double?
    /// One row per measurement, in the results' order.
    public let rows: [Row]

    /// The strategy combination `--calibrate-to` refers to.
    public static let calibrationReference = (mapping: MappingStrategy.page, teardown: TeardownStrategy.perEntry)

    /// A report under `latency`; with `calibrateTo`, the model is first
    /// scaled so that `page`/`per-entry` takes that many seconds.
    public init(_ results: CostResults, latency: LatencyModel = .default,
                calibrateTo: Double? = nil) throws(CostError) {
        var model = latency
        if let seconds = calibrateTo {
            let ref = Self.calibrationReference
            guard let m = results.measurement(ref.mapping, ref.teardown) else {
                throw CostError("--calibrate-to needs the page mapping and the per-entry teardown in the experiment")
            }
            model = try latency.calibrated(toSeconds: seconds, for: m)
        }
        self.results = results
        self.latency = model
        self.calibratedTo = calibrateTo
        self.rows = results.measurements.map {
            Row(measurement: $0, modelledSeconds: model.seconds(for: $0.maintenance, faults: $0.faults))
        }
    }

    /// The row for one combination.
    public func row(_ mapping: MappingStrategy, _ teardown: TeardownStrategy) -> Row? {
        rows.first { $0.mapping == mapping && $0.teardown == teardown }
    }

    // MARK: Text

    /// One line naming the region, the table and the CPU.
    public var headline: String {
        let c = results.configuration, g = results.geometry
        var s = "\(CostFormat.bytes(c.size)) of device memory at IPA \(Hex.short(c.ipa)) -> PA \(Hex.short(c.pa))"
        if results.layout(.fault) != nil {
            s += ", hva \(Hex.short(c.effectiveHVA))\(c.hva == nil ? " (congruent)" : "")"
        }
        s += ", \(c.writable ? "rw" : "ro")\n"
        s += "stage 2: granule=\(c.granule) ia_bits=\(c.iaBits) start_level=\(g.startLevel.rawValue) root_pages=\(g.rootPages)"
        s += " fwb=\(c.features.contains(.fwb) ? 1 : 0) tlbi_range=\(c.features.contains(.tlbiRange) ? 1 : 0) lpa2=\(c.lpa2 ? 1 : 0)"
        return s
    }

    /// The human-readable table, with the layouts and the model below it.
    public func table() -> String {
        let header = ["mapping", "teardown", "descriptors", "table pages", "faults", "tlbi ipa", "tlbi range",
                      "tlbi vmid", "dcache", "icache", "measured", "modelled", "vs page/per-entry"]
        let ref = row(Self.calibrationReference.mapping, Self.calibrationReference.teardown)
        var cells: [[String]] = [header]
        for r in rows {
            let m = r.maintenance, x = r.measurement
            var speedup = ""
            if let ref, r.modelledSeconds > 0 {
                speedup = CostFormat.ratio(ref.modelledSeconds / r.modelledSeconds)
            }
            cells.append([r.mapping.rawValue, r.teardown.rawValue + (r.teardown == .range && !results.configuration.features.isSuperset(of: r.teardown.requiredFeatures) ? "*" : ""),
                          String(x.descriptors), String(x.tablePages), String(x.faults),
                          String(m.tlbiIPA), String(m.tlbiRange), String(m.tlbiVMID),
                          Hex.short(m.dcacheBytes), Hex.short(m.icacheBytes),
                          CostFormat.duration(x.measuredSeconds), CostFormat.duration(r.modelledSeconds), speedup])
        }
        var widths = [Int](repeating: 0, count: header.count)
        for row in cells { for (i, c) in row.enumerated() { widths[i] = max(widths[i], c.count) } }
        var out = headline + "\n\n"
        for row in cells {
            var line = ""
            for (i, c) in row.enumerated() {
                let pad = String(repeating: " ", count: widths[i] - c.count)
                line += i < 2 ? c + pad : pad + c
                if i < row.count - 1 { line += "  " }
            }
            out += line + "\n"
        }
        out += "\nmapping layouts over the region:\n"
        for (mapping, layout) in results.layouts {
            out += "  \(mapping.rawValue.leftAligned(5)) \(layoutSummary(layout))\n"
        }
        out += "\n"
        if rows.contains(where: { $0.teardown == .range })
            && !results.configuration.features.isSuperset(of: TeardownStrategy.range.requiredFeatures) {
            out += "* range: measured on the same CPU plus FEAT_S2FWB and FEAT_TLBIRANGE, which the kernel needs to defer invalidations\n"
        }
        let runs = rows.first?.measurement.runs ?? 0
        out += "measured: this library's wall time for map + teardown, median of \(runs) run\(runs == 1 ? "" : "s")\n"
        if let t = calibratedTo {
            out += "modelled: latencies calibrated so page/per-entry takes \(CostFormat.duration(t)): \(latency)\n"
        } else {
            out += "modelled: latency model \(latency) (default assumptions; see --latency, --calibrate-to)\n"
        }
        return out
    }

    /// `1G x 8`, `2M x 4 + 4K x 1024`, in address order of first appearance.
    public func layoutSummary(_ layout: MappingLayout) -> String {
        var parts: [String] = []
        for (size, count) in layout.leaves { parts.append("\(CostFormat.size(size)) x \(count)") }
        if parts.isEmpty { parts.append("nothing mapped") }
        var s = parts.joined(separator: " + ")
        s += " (\(layout.tableDescriptors) table descriptor\(layout.tableDescriptors == 1 ? "" : "s"), \(layout.runs.count) run\(layout.runs.count == 1 ? "" : "s"))"
        return s
    }

    // MARK: JSON

    /// The JSON keys of each row, in order.
    public static let jsonKeys = ["mapping", "teardown", "descriptors", "tablePages", "faults", "tlbiIPA",
                                  "tlbiRange", "tlbiVMID", "dcacheBytes", "icacheBytes", "measuredSeconds",
                                  "modelledSeconds"]

    /// A JSON array with one object per row, keys as ``jsonKeys``.
    public func json() -> String {
        var out = "[\n"
        for (i, r) in rows.enumerated() {
            let m = r.maintenance, x = r.measurement
            let values: [String] = [
                "\"\(r.mapping.rawValue)\"", "\"\(r.teardown.rawValue)\"", String(x.descriptors),
                String(x.tablePages), String(x.faults), String(m.tlbiIPA), String(m.tlbiRange),
                String(m.tlbiVMID), String(m.dcacheBytes), String(m.icacheBytes),
                CostFormat.jsonNumber(x.measuredSeconds), CostFormat.jsonNumber(r.modelledSeconds),
            ]
            let fields = zip(Self.jsonKeys, values).map { "\"\($0)\": \($1)" }.joined(separator: ", ")
            out += "  {\(fields)}\(i < rows.count - 1 ? "," : "")\n"
        }
        out += "]\n"
        return out
    }
}

/// Number formatting shared by the table, the JSON and the SVG.
enum CostFormat {
    /// `8 GiB`, `2 MiB`, `12 KiB`, `100 bytes`: the largest binary unit that divides exactly.
    static func bytes(_ v: UInt64) -> String {
        let units: [(UInt64, String)] = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        for (u, name) in units where v >= u && v % u == 0 { return "\(v / u) \(name)" }
        return "\(v) bytes"
    }

    /// `1G`, `2M`, `4K`, `512M`, `64G`, `4T`: a leaf size as ptdump writes it.
    static func size(_ v: UInt64) -> String {
        let units: [(UInt64, String)] = [(1 << 40, "T"), (1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")]
        for (u, name) in units where v >= u && v % u == 0 { return "\(v / u)\(name)" }
        return "\(v)"
    }

    /// Seconds in the unit that reads best: `850 ns`, `2.5 µs`, `12.3 ms`, `4.20 s`, `30.0 min`.
    static func duration(_ s: Double) -> String {
        if s == 0 { return "0 s" }
        if s < 1e-6 { return fixed(s * 1e9, "ns") }
        if s < 1e-3 { return fixed(s * 1e6, "µs") }
        if s < 1 { return fixed(s * 1e3, "ms") }
        if s < 600 { return fixed(s, "s") }
        if s < 36000 { return fixed(s / 60, "min") }
        return fixed(s / 3600, "h")
    }

    /// Three significant digits and a unit.
    private static func fixed(_ v: Double, _ unit: String) -> String {
        let digits = v >= 100 ? 0 : (v >= 10 ? 1 : 2)
        return "\(decimal(v, digits: digits)) \(unit)"
    }

    /// `v` rounded to `digits` decimals, without exponent.
    static func decimal(_ v: Double, digits: Int) -> String {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let n = (v * scale).rounded()
        guard n.isFinite, abs(n) < 9e15 else { return String(v) }
        let i = Int64(n)
        let whole = i / Int64(scale), frac = abs(i % Int64(scale))
        guard digits > 0 else { return String(whole) }
        var f = String(frac)
        f = String(repeating: "0", count: digits - f.count) + f
        return "\(i < 0 && whole == 0 ? "-" : "")\(whole).\(f)"
    }

    /// `1x`, `262657x`, `0.52x`.
    static func ratio(_ r: Double) -> String {
        if r >= 100 { return "\(decimal(r, digits: 0))x" }
        if r >= 10 { return "\(decimal(r, digits: 1))x" }
        return "\(decimal(r, digits: 2))x"
    }

    /// A JSON number (never `inf` or `nan`).
    static func jsonNumber(_ v: Double) -> String {
        guard v.isFinite else { return "null" }
        return "\(v)"
    }
}

extension String {
    func leftAligned(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
