#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

@inline(__always) private func libcLog10(_ v: Double) -> Double { log10(v) }

/// Draws a ``CostReport`` as a plain SVG picture: per strategy, log-scale
/// bars of TLB invalidations and of modelled time; and per mapping
/// strategy, a strip of the IPA range coloured by the leaf size it built.
///
/// The SVG needs no script or stylesheet; every bar carries its row's
/// numbers in `data-*` attributes and a `<title>` tooltip, and the
/// numbers are printed beside the bars.
public enum CostSVG {
    private static let width = 1000.0
    private static let labelWidth = 170.0
    private static let barLeft = 180.0
    private static let barWidth = 520.0
    private static let rowHeight = 22.0
    private static let barHeight = 15.0

    /// Colours of the mapping strategies' bars.
    static func colour(_ m: MappingStrategy) -> String {
        switch m {
        case .page: "#c0392b"
        case .block: "#1e8449"
        case .fault: "#2e86c1"
        }
    }

    /// Colour of a leaf size in the strips: by the level it sits at.
    static func colour(leafSize: UInt64, granule: Granule) -> String {
        if leafSize == 0 { return "#e5e5e5" }
        if leafSize == granule.pageSize { return "#e67e22" }
        if leafSize == granule.size(at: Level(2)) { return "#5dade2" }
        if leafSize == granule.size(at: Level(1)) { return "#1e8449" }
        return "#7d3c98"
    }

    /// Opacity of a teardown strategy's bar, so the three rows of one
    /// mapping read as a group.
    static func opacity(_ t: TeardownStrategy) -> String {
        switch t {
        case .perEntry: "1"
        case .range: "0.75"
        case .vmWide: "0.5"
        }
    }

    /// The picture.
    public static func render(_ report: CostReport) -> String {
        var svg = Canvas()
        let rows = report.rows
        let results = report.results
        let c = results.configuration
        let g = c.granule

        var y = 30.0
        svg.text(x: 20, y: y, "kvmpt cost: \(CostFormat.bytes(c.size)) of device MMIO, granule \(g), ia_bits=\(c.iaBits)", size: 18, weight: "bold")
        y += 20
        for line in report.headline.split(separator: "\n") {
            svg.text(x: 20, y: y, String(line), size: 12, fill: "#444")
            y += 16
        }
        let model = report.calibratedTo.map { "latencies calibrated so page/per-entry takes \(CostFormat.duration($0))" }
            ?? "default latency assumptions"
        svg.text(x: 20, y: y, "modelled time: \(model): \(report.latency)", size: 11, fill: "#444")
        y += 30

        // Panel 1: TLB invalidations.
        let maxTLBI = rows.map(\.measurement.totalTLBIs).max() ?? 1
        let tlbiDecades = max(1, Int(log10ceil(Double(max(maxTLBI, 1)))))
        y = panel(&svg, title: "TLB invalidations per mapping + teardown (log scale)", top: y, rows: rows,
                  decades: (0, tlbiDecades), tick: { tickCount($0) },
                  value: { Double($0.measurement.totalTLBIs) },
                  label: { r in
                      let m = r.maintenance
                      return "\(r.measurement.totalTLBIs)  (ipa \(m.tlbiIPA), range \(m.tlbiRange), vmid \(m.tlbiVMID))"
                  })
        y += 20

        // Panel 2: modelled time.
        let times = rows.map(\.modelledSeconds).filter { $0 > 0 }
        let lo = Int(log10floor(times.min() ?? 1e-6)), hiRaw = Int(log10ceil(times.max() ?? 1))
        let hi = hiRaw > lo ? hiRaw : lo + 1
        y = panel(&svg, title: "Modelled hardware time (log scale)", top: y, rows: rows,
                  decades: (lo, hi), tick: { tickSeconds($0) },
                  value: { $0.modelledSeconds },
                  label: { r in "\(CostFormat.duration(r.modelledSeconds))  (measured here \(CostFormat.duration(r.measurement.measuredSeconds)))" })
        y += 20

        // Panel 3: the strips.
        svg.text(x: 20, y: y, "What each mapping strategy built over IPA \(Hex.short(c.ipa))–\(Hex.short(c.ipa &+ c.size))", size: 14, weight: "bold")
        y += 14
        let span = Double(c.size)
        for (mapping, layout) in results.layouts {
            svg.text(x: labelWidth, y: y + barHeight - 3, mapping.rawValue, size: 12, anchor: "end")
            svg.open("g", ["class": "strip", "data-mapping": mapping.rawValue,
                           "data-descriptors": String(layout.descriptors),
                           "data-runs": String(layout.runs.count)])
            for run in layout.runs {
                let x0 = barLeft + Double(run.start &- c.ipa) / span * barWidth
                let w = max(0.5, Double(run.end &- run.start) / span * barWidth)
                let what = run.leafSize == 0 ? "unmapped" : "\(CostFormat.size(run.leafSize)) leaves"
                svg.rect(x: x0, y: y, w: w, h: barHeight, fill: colour(leafSize: run.leafSize, granule: g),
                         attributes: ["data-start": Hex.short(run.start), "data-end": Hex.short(run.end),
                                      "data-leaf-size": String(run.leafSize)],
                         title: "\(mapping): \(Hex.short(run.start))–\(Hex.short(run.end)): \(what)")
            }
            svg.close("g")
            svg.text(x: barLeft + barWidth + 10, y: y + barHeight - 3, report.layoutSummary(layout), size: 11)
            y += rowHeight
        }
        svg.text(x: barLeft, y: y + 6, Hex.short(c.ipa), size: 10, fill: "#666")
        svg.text(x: barLeft + barWidth, y: y + 6, Hex.short(c.ipa &+ c.size), size: 10, fill: "#666", anchor: "end")
        y += 24
        // Legend: every leaf size the strips use.
        var sizes = Set<UInt64>()
        for (_, layout) in results.layouts { for run in layout.runs { sizes.insert(run.leafSize) } }
        var x = barLeft
        for size in sizes.sorted(by: >) {
            svg.rect(x: x, y: y - 10, w: 12, h: 12, fill: colour(leafSize: size, granule: g))
            let name = size == 0 ? "unmapped" : "\(CostFormat.size(size)) \(size == g.pageSize ? "page" : "block")"
            svg.text(x: x + 16, y: y, name, size: 11)
            x += 110
        }
        y += 24
        if rows.contains(where: { $0.teardown == .range }) && !c.features.isSuperset(of: TeardownStrategy.range.requiredFeatures) {
            svg.text(x: 20, y: y, "range: the same CPU plus FEAT_S2FWB and FEAT_TLBIRANGE, which the kernel needs to defer invalidations.", size: 11, fill: "#444")
            y += 16
        }
        return svg.document(width: width, height: y + 10)
    }

    /// One panel of bars, a row per measurement; returns the y below it.
    private static func panel(_ svg: inout Canvas, title: String, top: Double, rows: [CostReport.Row],
                              decades: (Int, Int), tick: (Int) -> String,
                              value: (CostReport.Row) -> Double, label: (CostReport.Row) -> String) -> Double {
        var y = top
        svg.text(x: 20, y: y, title, size: 14, weight: "bold")
        y += 18
        let (lo, hi) = decades
        let scale = barWidth / Double(hi - lo)
        let axisTop = y
        let bottom = y + Double(rows.count) * rowHeight
        for d in lo...hi {
            let x = barLeft + Double(d - lo) * scale
            svg.line(x1: x, y1: axisTop - 4, x2: x, y2: bottom, stroke: "#ccc")
            svg.text(x: x, y: bottom + 12, tick(d), size: 9, fill: "#666", anchor: "middle")
        }
        for r in rows {
            let v = value(r)
            let name = "\(r.mapping.rawValue) / \(r.teardown.rawValue)"
            svg.text(x: labelWidth, y: y + barHeight - 3, name, size: 12, anchor: "end")
            let w = v > 0 ? max(2, (logarithm(v) - Double(lo)) * scale) : 0
            let m = r.maintenance, x = r.measurement
            svg.rect(x: barLeft, y: y, w: w, h: barHeight, fill: colour(r.mapping), opacity: opacity(r.teardown),
                     attributes: ["class": "bar", "data-mapping": r.mapping.rawValue, "data-teardown": r.teardown.rawValue,
                                  "data-descriptors": String(x.descriptors), "data-table-pages": String(x.tablePages),
                                  "data-faults": String(x.faults), "data-tlbi-ipa": String(m.tlbiIPA),
                                  "data-tlbi-range": String(m.tlbiRange), "data-tlbi-vmid": String(m.tlbiVMID),
                                  "data-dcache-bytes": String(m.dcacheBytes), "data-icache-bytes": String(m.icacheBytes),
                                  "data-measured-seconds": CostFormat.jsonNumber(x.measuredSeconds),
                                  "data-modelled-seconds": CostFormat.jsonNumber(r.modelledSeconds)],
                     title: "\(name): \(label(r))")
            svg.text(x: barLeft + w + 6, y: y + barHeight - 3, label(r), size: 11)
            y += rowHeight
        }
        return bottom + 16
    }

    /// `1`, `10`, `100`, `1k`, `10k`, `100k`, `1M`, `10M`.
    static func tickCount(_ decade: Int) -> String {
        let names = ["1", "10", "100", "1k", "10k", "100k", "1M", "10M", "100M", "1G", "10G", "100G"]
        return decade >= 0 && decade < names.count ? names[decade] : "1e\(decade)"
    }

    /// `1 ns`, `10 µs`, `100 ms`, `1 s`, `1000 s`: a decade of seconds.
    static func tickSeconds(_ decade: Int) -> String {
        let (unitExponent, unit) = decade < -6 ? (-9, "ns") : decade < -3 ? (-6, "µs") : decade < 0 ? (-3, "ms") : (0, "s")
        let v = pow10(decade - unitExponent)
        return v >= 1 ? "\(Int(v)) \(unit)" : "\(CostFormat.duration(pow10(decade)))"
    }

    static func logarithm(_ v: Double) -> Double { v > 0 && v.isFinite ? libcLog10(v) : 0 }
    static func log10floor(_ v: Double) -> Double { (logarithm(v) + 1e-9).rounded(.down) }
    static func log10ceil(_ v: Double) -> Double { (logarithm(v) - 1e-9).rounded(.up) }
    static func pow10(_ d: Int) -> Double {
        var v = 1.0
        if d >= 0 { for _ in 0..<d { v *= 10 } } else { for _ in 0..<(-d) { v /= 10 } }
        return v
    }
}

/// A minimal SVG writer: elements, escaped text, stable attribute order.
struct Canvas {
    private var body = ""

    static func escape(_ s: String) -> String {
        var out = ""
        for ch in s {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(ch)
            }
        }
        return out
    }

    static func number(_ v: Double) -> String { CostFormat.decimal(v, digits: 2) }

    private static func attributes(_ a: [String: String]) -> String {
        a.sorted { $0.key < $1.key }.map { " \($0.key)=\"\(escape($0.value))\"" }.joined()
    }

    mutating func open(_ name: String, _ a: [String: String]) {
        body += "<\(name)\(Self.attributes(a))>\n"
    }

    mutating func close(_ name: String) { body += "</\(name)>\n" }

    mutating func text(x: Double, y: Double, _ s: String, size: Int, weight: String? = nil,
                       fill: String = "#111", anchor: String = "start") {
        var a = ["x": Self.number(x), "y": Self.number(y), "font-size": String(size), "fill": fill]
        if let weight { a["font-weight"] = weight }
        if anchor != "start" { a["text-anchor"] = anchor }
        body += "<text\(Self.attributes(a))>\(Self.escape(s))</text>\n"
    }

    mutating func rect(x: Double, y: Double, w: Double, h: Double, fill: String, opacity: String = "1",
                       attributes extra: [String: String] = [:], title: String? = nil) {
        var a = extra
        a["x"] = Self.number(x); a["y"] = Self.number(y)
        a["width"] = Self.number(w); a["height"] = Self.number(h)
        a["fill"] = fill
        if opacity != "1" { a["fill-opacity"] = opacity }
        if let title {
            body += "<rect\(Self.attributes(a))><title>\(Self.escape(title))</title></rect>\n"
        } else {
            body += "<rect\(Self.attributes(a))/>\n"
        }
    }

    mutating func line(x1: Double, y1: Double, x2: Double, y2: Double, stroke: String) {
        let a = ["x1": Self.number(x1), "y1": Self.number(y1), "x2": Self.number(x2), "y2": Self.number(y2),
                 "stroke": stroke, "stroke-width": "1"]
        body += "<line\(Self.attributes(a))/>\n"
    }

    func document(width: Double, height: Double) -> String {
        let w = Self.number(width), h = Self.number(height)
        return """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" width="\(w)" height="\(h)" viewBox="0 0 \(w) \(h)" font-family="Helvetica, Arial, sans-serif">
            <rect x="0" y="0" width="\(w)" height="\(h)" fill="#ffffff"/>
            \(body)</svg>

            """
    }
}
