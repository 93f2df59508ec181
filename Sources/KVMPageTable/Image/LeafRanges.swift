import CKVMPageTable

/// What a leaf's attribute bits mean, for one kind of table.
public struct AttributeDecoder: Sendable {
    /// Stage-2 or hyp.
    public let kind: TableKind
    /// The descriptor format (LPA2 descriptors carry no SH field).
    public let format: DescriptorFormat
    /// HCR_EL2.FWB (stage-2 MemAttr encoding).
    public let fwb: Bool

    /// A decoder.
    public init(kind: TableKind, format: DescriptorFormat, fwb: Bool) {
        self.kind = kind
        self.format = format
        self.fwb = fwb
    }

    /// A stage-2 MemAttr[3:0] value's meaning, and whether it is reserved.
    public static func memAttr(_ v: UInt64, fwb: Bool) -> (meaning: String, reserved: Bool) {
        let device = ["Device-nGnRnE", "Device-nGnRE", "Device-nGRE", "Device-GRE"]
        if fwb {
            if v & 0b1000 != 0 { return ("reserved (MemAttr[3] set with FWB)", true) }
            switch v & 0b111 {
            case 0b000...0b011: return (device[Int(v & 3)] + " (FWB)", false)
            case 0b100: return ("reserved (FWB; NoTagAccess only with FEAT_MTE_PERM)", true)
            case 0b101: return ("Normal-NC (FWB)", false)
            case 0b110: return ("Normal-WB forced (FWB)", false)
            default: return ("Normal, stage-1 attributes (FWB)", false)
            }
        }
        let outer = v >> 2, inner = v & 3
        if outer == 0 { return (device[Int(inner)], false) }
        if inner == 0 { return ("reserved (Normal with inner MemAttr[1:0]=0b00)", true) }
        let names = ["", "NC", "WT", "WB"]
        if outer == inner { return ("Normal-\(names[Int(inner)])", false) }
        return ("Normal outer-\(names[Int(outer)]) inner-\(names[Int(inner)])", false)
    }

    /// A hyp AttrIndx's meaning under the MAIR_EL2 Linux programs.
    public static func attrIndex(_ v: UInt64) -> String {
        switch v {
        case KVMPT_MT_NORMAL: "Normal-WB"
        case KVMPT_MT_NORMAL_TAGGED: "Normal-WB-tagged"
        case KVMPT_MT_NORMAL_NC: "Normal-NC"
        case KVMPT_MT_DEVICE_nGnRnE: "Device-nGnRnE"
        case KVMPT_MT_DEVICE_nGnRE: "Device-nGnRE"
        default: "MAIR_EL2.Attr\(v) (unused by Linux)"
        }
    }

    /// Permission letters: `r`/`-`, `w`/`-`, and `x` (executable at both
    /// ELs), `u` (EL0 only), `p` (EL1 only) or `-`.
    public func permissions(_ pte: UInt64) -> String {
        let d = Descriptor(pte)
        switch kind {
        case .stage2:
            let x: String
            switch d.s2XN {
            case 0b00: x = "x"
            case 0b01: x = "u"
            case 0b11: x = "p"
            default: x = "-"
            }
            return (d.s2Readable ? "r" : "-") + (d.s2Writable ? "w" : "-") + x
        case .hyp:
            let ro = d.s1AP & 0b10 != 0
            return "r" + (ro ? "-" : "w") + (d.s1XN ? "-" : "x")
        }
    }

    /// Whether the leaf is writable and executable at once.
    public func isWritableAndExecutable(_ pte: UInt64) -> Bool {
        let d = Descriptor(pte)
        switch kind {
        case .stage2: return d.s2Writable && d.s2XN != 0b10
        case .hyp: return d.s1AP & 0b10 == 0 && !d.s1XN
        }
    }

    /// The memory type of a leaf, and whether its encoding is reserved.
    public func memoryType(_ pte: UInt64) -> (meaning: String, reserved: Bool) {
        let d = Descriptor(pte)
        switch kind {
        case .stage2: return Self.memAttr(d.s2MemAttr, fwb: fwb)
        case .hyp: return (Self.attrIndex(d.s1AttrIndex), false)
        }
    }

    /// The attribute words of a valid leaf, space separated.
    public func attributes(_ pte: UInt64) -> String {
        let d = Descriptor(pte)
        var words = [permissions(pte)]
        words.append(d.accessFlag ? "AF" : "af=0")
        if !format.lpa2 {
            words.append("SH=" + ["NS", "reserved", "OS", "IS"][Int(d.shareability)])
        }
        let (mt, _) = memoryType(pte)
        switch kind {
        case .stage2: words.append("\(mt) (MemAttr=\(Hex.short(d.s2MemAttr)))")
        case .hyp: words.append("\(mt) (AttrIndx=\(d.s1AttrIndex))")
        }
        if pte & (1 << 51) != 0 { words.append("DBM") }
        if pte & (1 << 52) != 0 { words.append("CONT") }
        if kind == .hyp && pte & KVMPT_S1_GP != 0 { words.append("GP") }
        if d.softwareBits != 0 { words.append("SW=\(Hex.short(d.softwareBits))") }
        return words.joined(separator: " ")
    }

    /// What a non-zero invalid entry holds.
    public func invalidAnnotation(_ pte: UInt64) -> String {
        if kind == .stage2 {
            if pte & KVMPT_INVALID_PTE_LOCKED != 0 { return "locked (break-before-make in progress) \(Hex.padded(pte))" }
            let owner = (pte & KVMPT_INVALID_PTE_OWNER_MASK) >> 2
            if owner != 0 && pte & ~KVMPT_INVALID_PTE_OWNER_MASK == 0 {
                return "owner=\(owner)\(owner > KVMPT_MAX_OWNER_ID ? " (above KVM_MAX_OWNER_ID)" : owner == 1 ? " (hypervisor)" : "")"
            }
        }
        return "invalid \(Hex.padded(pte))"
    }
}

/// A run of consecutive entries at one level that map contiguously with
/// the same attributes (or hold the same invalid value).
public struct LeafRange: Hashable, Sendable {
    /// First input address.
    public var start: UInt64
    /// First input address past the run.
    public var end: UInt64
    /// The entries' level.
    public var level: Level
    /// How many entries.
    public var count: Int
    /// The first entry.
    public var descriptor: UInt64
    /// The first entry's output address (valid runs).
    public var physicalAddress: UInt64?
    /// Whether the entries are valid leaves.
    public var isValid: Bool { physicalAddress != nil }
}

extension TableInspector {
    /// Merges entries into ranges: same level, adjacent, same attributes and
    /// contiguous output (valid), or identical (invalid).
    public static func ranges(_ entries: [EntryRecord], format: DescriptorFormat) -> [LeafRange] {
        var out: [LeafRange] = []
        let g = format.granule
        for e in entries {
            let size = g.size(at: e.level)
            let pa: UInt64? = e.isValid ? format.physical(fromPTE: e.descriptor) : nil
            if var last = out.last, last.level == e.level, last.end == e.address {
                let same: Bool
                if let lastPA = last.physicalAddress, let pa {
                    same = (last.descriptor ^ e.descriptor) & ~format.addressMask == 0
                        && lastPA &+ (e.address &- last.start) == pa
                } else {
                    same = last.physicalAddress == nil && pa == nil && last.descriptor == e.descriptor
                }
                if same {
                    last.end = e.address &+ size
                    last.count += 1
                    out[out.count - 1] = last
                    continue
                }
            }
            out.append(LeafRange(start: e.address, end: e.address &+ size, level: e.level, count: 1,
                                 descriptor: e.descriptor, physicalAddress: pa))
        }
        return out
    }

    /// The attribute decoder for this table.
    public var attributeDecoder: AttributeDecoder { AttributeDecoder(kind: kind, format: format, fwb: fwb) }

    /// `--format wide`: one line per range, holes included (`unmapped`),
    /// with the output range, permissions, access flag, shareability, the
    /// memory type and its meaning, DBM/contiguous/software bits, and the
    /// owner annotation of invalid entries.
    public func wideText() -> (text: String, report: WalkReport) {
        let (entries, _, report) = self.entries()
        let ranges = Self.ranges(entries, format: format)
        let dec = attributeDecoder
        var s = ""
        var cursor: UInt64 = 0
        func hole(_ a: UInt64, _ b: UInt64) {
            s += "\(Hex.padded(a))-\(Hex.padded(b)) \(pad(RegisterDecoding.size(b &- a), 6))  --  unmapped\n"
        }
        for r in ranges {
            if r.start > cursor { hole(cursor, r.start) }
            cursor = r.end
            let size = granule.size(at: r.level)
            var line = "\(Hex.padded(r.start))-\(Hex.padded(r.end)) \(pad(RegisterDecoding.size(r.end &- r.start), 6))  \(r.level) "
            if let pa = r.physicalAddress {
                let what = r.level.isLast ? "page" : "block"
                line += "\(r.count) x \(RegisterDecoding.size(size)) \(what)\(r.count == 1 ? "" : "s") -> \(Hex.padded(pa))-\(Hex.padded(pa &+ (r.end &- r.start))) \(dec.attributes(r.descriptor))"
            } else {
                line += "\(r.count) x \(dec.invalidAnnotation(r.descriptor))"
            }
            s += line + "\n"
        }
        if cursor < geometry.inputLimit { hole(cursor, geometry.inputLimit) }
        return (s, report)
    }

    /// `--format json`: one JSON object per line per non-empty range.
    ///
    /// Keys (stable): `start`, `end`, `size` (hex strings), `level` (number),
    /// `count` (entries), `type` (`block`, `page` or `invalid`), `pte` (the
    /// first entry), and for valid ranges `pa`, `pa_end`, `perm` (as in
    /// `wide`), `r`, `w` (booleans), `x` (`"x"`, `"u"`, `"p"` or `"-"`), `af`,
    /// `sh` (`NS`/`OS`/`IS`/`reserved`, absent with LPA2), `memattr`
    /// (stage-2 MemAttr or hyp AttrIndx), `memtype` (its meaning), `sw`;
    /// for invalid ranges `annotation`.
    public func jsonLines() -> (text: String, report: WalkReport) {
        let (entries, _, report) = self.entries()
        let dec = attributeDecoder
        var s = ""
        for r in Self.ranges(entries, format: format) {
            let d = Descriptor(r.descriptor)
            var kv: [(String, String)] = [
                ("start", q(Hex.short(r.start))), ("end", q(Hex.short(r.end))),
                ("size", q(Hex.short(r.end &- r.start))), ("level", "\(r.level.rawValue)"),
                ("count", "\(r.count)"),
                ("type", q(r.isValid ? (r.level.isLast ? "page" : "block") : "invalid")),
                ("pte", q(Hex.padded(r.descriptor))),
            ]
            if let pa = r.physicalAddress {
                let perm = dec.permissions(r.descriptor)
                let chars = Array(perm)
                kv += [("pa", q(Hex.short(pa))), ("pa_end", q(Hex.short(pa &+ (r.end &- r.start)))),
                       ("perm", q(perm)), ("r", chars[0] == "r" ? "true" : "false"),
                       ("w", chars[1] == "w" ? "true" : "false"), ("x", q(String(chars[2]))),
                       ("af", d.accessFlag ? "true" : "false")]
                if !format.lpa2 { kv.append(("sh", q(["NS", "reserved", "OS", "IS"][Int(d.shareability)]))) }
                kv.append(("memattr", "\(kind == .stage2 ? d.s2MemAttr : d.s1AttrIndex)"))
                kv.append(("memtype", q(dec.memoryType(r.descriptor).meaning)))
                kv.append(("sw", "\(d.softwareBits)"))
            } else {
                kv.append(("annotation", q(dec.invalidAnnotation(r.descriptor))))
            }
            s += "{" + kv.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}\n"
        }
        return (s, report)
    }
}

/// A JSON string literal (the text here is ASCII without quotes or backslashes).
func q(_ s: String) -> String {
    var out = "\""
    for c in s.unicodeScalars {
        switch c {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        default:
            if c.value < 0x20 { out += "\\u" + String(repeating: "0", count: 4 - String(c.value, radix: 16).count) + String(c.value, radix: 16) }
            else { out.unicodeScalars.append(c) }
        }
    }
    return out + "\""
}

/// Right-aligns `s` in `width` columns.
func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
}
