import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import KVMPageTable

/// Collects elements, attributes and text from an XML document.
final class CostSVGReader: NSObject, XMLParserDelegate {
    var elements: [(name: String, attributes: [String: String])] = []
    var texts: [String] = []
    private var current = ""

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?,
                qualifiedName: String?, attributes: [String: String] = [:]) {
        elements.append((name, attributes))
        current = ""
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { current += string }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "text" || name == "title" { texts.append(current) }
        current = ""
    }
}

@Suite struct CostSVGTests {
    static func report(_ c: CostConfiguration) throws -> CostReport {
        try CostReport(CostExperiment(c, runs: 1).run(), calibrateTo: 1800)
    }

    static func parse(_ svg: String) throws -> CostSVGReader {
        let parser = XMLParser(data: Data(svg.utf8))
        let reader = CostSVGReader()
        parser.delegate = reader
        let ok = parser.parse()
        #expect(ok, "not well-formed XML: \(String(describing: parser.parserError))")
        return reader
    }

    @Test func svgIsWellFormedAndCarriesTheTablesNumbers() throws {
        let report = try Self.report(CostConfiguration(ipa: 0x1_0000_0000, pa: 0x8_0000_0000, size: 64 << 20))
        let svg = CostSVG.render(report)
        let reader = try Self.parse(svg)
        #expect(reader.elements.first?.name == "svg")
        #expect(reader.elements.first?.attributes["xmlns"] == "http://www.w3.org/2000/svg")

        let bars = reader.elements.filter { $0.attributes["class"] == "bar" }
        // Two panels (TLBIs, modelled time), one bar per row in each.
        #expect(bars.count == 2 * report.rows.count)
        for row in report.rows {
            let mine = bars.filter {
                $0.attributes["data-mapping"] == row.mapping.rawValue && $0.attributes["data-teardown"] == row.teardown.rawValue
            }
            #expect(mine.count == 2)
            let m = row.maintenance, x = row.measurement
            for bar in mine {
                let a = bar.attributes
                #expect(a["data-tlbi-ipa"] == String(m.tlbiIPA))
                #expect(a["data-tlbi-range"] == String(m.tlbiRange))
                #expect(a["data-tlbi-vmid"] == String(m.tlbiVMID))
                #expect(a["data-descriptors"] == String(x.descriptors))
                #expect(a["data-table-pages"] == String(x.tablePages))
                #expect(a["data-faults"] == String(x.faults))
                #expect(a["data-dcache-bytes"] == String(m.dcacheBytes))
                #expect(a["data-icache-bytes"] == String(m.icacheBytes))
                #expect(Double(a["data-modelled-seconds"] ?? "") == row.modelledSeconds)  // Swift prints doubles round-trip
                #expect(Double(a["data-measured-seconds"] ?? "") == x.measuredSeconds)
            }
            // The numbers are printed too, as the table prints them.
            let total = "\(x.totalTLBIs)  (ipa \(m.tlbiIPA), range \(m.tlbiRange), vmid \(m.tlbiVMID))"
            #expect(reader.texts.contains(total), "\(total)")
            #expect(reader.texts.contains { $0.hasPrefix(CostFormat.duration(row.modelledSeconds)) })
        }
        // 64 MiB page by page: 16384 + 32 + 1 per-entry TLBIs, in text.
        #expect(reader.texts.contains { $0.hasPrefix("16417  (ipa 16417") })
        // Calibrated: page/per-entry is the RFC's 30 minutes.
        #expect(reader.texts.contains { $0.hasPrefix("30.0 min") })
    }

    @Test func stripsCoverTheRegionColouredByLeafSize() throws {
        // Congruent but unaligned: 1 MiB of pages, a 1G block, a 2M block.
        let ipa: UInt64 = 0x3FF0_0000, pa: UInt64 = 0x7FF0_0000
        let c = CostConfiguration(ipa: ipa, pa: pa, size: (1 << 30) + (3 << 20))
        let report = try Self.report(c)
        let reader = try Self.parse(CostSVG.render(report))
        for (mapping, layout) in report.results.layouts {
            let strip = reader.elements.firstIndex { $0.attributes["class"] == "strip" && $0.attributes["data-mapping"] == mapping.rawValue }
            let index = try #require(strip)
            #expect(reader.elements[index].attributes["data-descriptors"] == String(layout.descriptors))
            let runs = reader.elements[(index + 1)...].filter { $0.name == "rect" }.prefix(layout.runs.count)
            #expect(runs.map { $0.attributes["data-leaf-size"] ?? "" } == layout.runs.map { String($0.leafSize) })
            #expect(runs.first?.attributes["data-start"] == Hex.short(ipa))
            #expect(runs.last?.attributes["data-end"] == Hex.short(ipa + c.size))
        }
        let block = try #require(report.results.layout(.block))
        #expect(block.runs.map(\.leafSize) == [4096, 1 << 30, 2 << 20])
        #expect(block.leafCounts == [4096: 256, 2 << 20: 1, 1 << 30: 1])
        #expect(report.results.layout(.fault)?.leafCounts == block.leafCounts)
    }

    @Test func svgEscapesText() {
        var canvas = Canvas()
        canvas.text(x: 0, y: 0, "a < b & \"c\"", size: 10)
        let doc = canvas.document(width: 10, height: 10)
        #expect(doc.contains("a &lt; b &amp; &quot;c&quot;"))
    }
}
