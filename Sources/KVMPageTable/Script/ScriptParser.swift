// TEMPORARY quick parser (lead's scaffold); replaced by the full parser.
public enum ScriptParser {
    public static func parse(_ text: String, fileName: String) throws(ScriptError) -> Script {
        var config: ScriptConfiguration? = nil
        var statements: [Statement] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let t = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if t.isEmpty { continue }
            func err(_ m: String) -> ScriptError { ScriptError(fileName: fileName, line: i + 1, message: m) }
            func num(_ s: Substring) throws(ScriptError) -> UInt64 {
                var s = s, mul: UInt64 = 1
                if let c = s.last, let k = ["K": 10, "M": 20, "G": 30, "T": 40][c.uppercased()] { mul = 1 << UInt64(k); s = s.dropLast() }
                let v = s.hasPrefix("0x") ? UInt64(s.dropFirst(2), radix: 16) : UInt64(s)
                guard let v else { throw err("bad number") }
                return v * mul
            }
            if t[0] == "stage2" || t[0] == "hyp" {
                var c = ScriptConfiguration(kind: t[0] == "hyp" ? .hyp : .stage2, granule: .size4K, inputBits: 0)
                for o in t.dropFirst() {
                    if o.hasPrefix("granule=") { c.granule = Granule(name: String(o.dropFirst(8)))! }
                    else if o.hasPrefix("ia_bits=") || o.hasPrefix("va_bits=") { c.inputBits = Int(o.dropFirst(8))! }
                    else if o == "fwb" { c.fwb = true } else if o == "lpa2" { c.lpa2 = true } else if o == "tlbi_range" { c.tlbiRange = true }
                }
                config = c
                continue
            }
            let op: Operation
            let a = t.dropFirst()
            func n(_ k: Int) throws(ScriptError) -> UInt64 { try num(a[a.startIndex + k]) }
            switch t[0] {
            case "map": op = .map(addr: try n(0), size: try n(1), phys: try n(2), prot: Prot(letters: a[a.startIndex + 3])!)
            case "unmap": op = .unmap(addr: try n(0), size: try n(1))
            case "ioremap": op = .ioremap(addr: try n(0), size: try n(1), phys: try n(2), readOnly: a.count > 3)
            case "ioremap_block": op = .ioremapBlock(addr: try n(0), size: try n(1), phys: try n(2), readOnly: a.count > 3)
            case "wrprotect": op = .wrprotect(addr: try n(0), size: try n(1))
            case "mkyoung": op = .mkyoung(addr: try n(0))
            case "test_clear_young": op = .testClearYoung(addr: try n(0), size: try n(1), mkold: a.count > 2)
            case "relax_perms": op = .relaxPerms(addr: try n(0), prot: Prot(letters: a[a.startIndex + 1])!)
            case "flush": op = .flush(addr: try n(0), size: try n(1))
            case "split": op = .split(addr: try n(0), size: try n(1))
            case "get_leaf": op = .getLeaf(addr: try n(0))
            case "limit_pages": op = .limitPages(try n(0))
            case "dump": op = .dump
            case "summary": op = .summary
            case "ptdump": op = .ptdump
            default: throw err("unknown statement")
            }
            statements.append(Statement(operation: op, line: i + 1))
        }
        guard let config else { throw ScriptError(fileName: fileName, line: 1, message: "missing configuration") }
        return Script(fileName: fileName, configuration: config, statements: statements)
    }
}
