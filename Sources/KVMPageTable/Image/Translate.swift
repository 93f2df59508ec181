import CKVMPageTable

/// An architectural fault a translation raises.
public struct TranslationFault: Hashable, Sendable, CustomStringConvertible {
    /// The fault kinds the walk itself can raise.
    public enum Kind: String, Hashable, Sendable {
        /// Translation fault.
        case translation = "Translation fault"
        /// Address size fault.
        case addressSize = "Address size fault"
        /// Access flag fault.
        case accessFlag = "Access flag fault"
    }
    /// The kind.
    public let kind: Kind
    /// The level it is reported at.
    public let level: Level
    /// Why.
    public let reason: String
    /// Whether it is a stage-2 fault.
    public let stage2: Bool

    /// The DFSC/IFSC encoding (ESR_EL2.ISS[5:0]).
    public var dfsc: UInt64 {
        let l = Int(level.rawValue)
        switch kind {
        case .addressSize: return l < 0 ? 0b101001 : UInt64(0b000000 + l)
        case .translation: return l < 0 ? 0b101011 : UInt64(0b000100 + l)
        case .accessFlag: return l < 0 ? 0b001000 : UInt64(0b001000 + l)
        }
    }

    /// `stage 2 Translation fault, level 2 (DFSC 0x06): …`.
    public var description: String {
        "\(stage2 ? "stage 2 " : "")\(kind.rawValue), level \(level.rawValue) (DFSC \(Hex.short(dfsc)) = 0b\(String(repeating: "0", count: 6 - String(dfsc, radix: 2).count) + String(dfsc, radix: 2))): \(reason)"
    }
}

/// One lookup of a translation walk.
public struct TranslationStep: Hashable, Sendable {
    /// The level.
    public let level: Level
    /// PA of the table page read.
    public let tablePhysicalAddress: UInt64
    /// The entry's index in that page.
    public let index: Int
    /// The raw descriptor.
    public let descriptor: UInt64
}

/// The full walk of one input address.
public struct Translation: Sendable {
    /// The input address.
    public let address: UInt64
    /// The lookups, from the start level down.
    public var steps: [TranslationStep] = []
    /// The output address, when the walk ends in a usable leaf.
    public var outputAddress: UInt64?
    /// The leaf's level and size.
    public var leafLevel: Level?
    /// The architectural fault, when the MMU would raise one.
    public var fault: TranslationFault?
    /// Why the walk could not go on (the image lacks the next table).
    public var stop: String?
    /// A remark that does not stop the walk (an access flag hardware sets).
    public var notes: [String] = []
}

extension TableInspector {
    /// Walks `address` as the MMU would and reports every lookup, then the
    /// output address and attributes, or the fault raised.
    public func translate(_ address: UInt64) -> Translation {
        var t = Translation(address: address)
        let stage2 = kind == .stage2
        guard address < geometry.inputLimit else {
            t.fault = TranslationFault(kind: .translation, level: Level(0),
                                       reason: "\(Hex.short(address)) is beyond the \(geometry.inputBits)-bit input range (T0SZ=\(64 - geometry.inputBits))",
                                       stage2: stage2)
            return t
        }
        let page = granule.pageSize
        var v = TraceVisitor(inspector: self, address: address,
                             table: walker.rootPhysicalAddress &+ UInt64(geometry.rootPageIndex(of: address)) &* page)
        _ = walker.walk(address & ~(page - 1), size: page, visitor: &v)
        t.steps = v.steps
        t.fault = v.fault
        t.notes = v.notes
        t.stop = v.stop
        if v.steps.isEmpty, t.fault == nil, t.stop == nil {
            t.stop = "the root table page cannot be read"
        }
        if t.fault == nil, t.stop == nil, let last = v.steps.last {
            let size = granule.size(at: last.level)
            t.outputAddress = format.physical(fromPTE: last.descriptor) &+ (address & (size &- 1))
            t.leafLevel = last.level
        }
        return t
    }

    /// The translation as text: one line per lookup, then the result.
    public func translationText(_ t: Translation) -> String {
        var s = "\(kind == .stage2 ? "IPA" : "VA") \(Hex.padded(t.address))\n"
        let dec = attributeDecoder
        for step in t.steps {
            let d = step.descriptor
            var what: String
            if d & KVMPT_PTE_VALID == 0 {
                what = d == 0 ? "invalid (empty)" : "invalid (\(dec.invalidAnnotation(d)))"
            } else if Descriptor(d).isTable(at: step.level) {
                what = "table -> \(Hex.padded(format.physical(fromPTE: d)))"
            } else if step.level.isLast {
                what = d & KVMPT_PTE_TYPE != 0 ? "page" : "reserved (block encoding at level 3)"
            } else {
                what = "block \(RegisterDecoding.size(granule.size(at: step.level)))"
            }
            s += "  \(step.level) table \(Hex.padded(step.tablePhysicalAddress))[\(step.index)] = \(Hex.padded(d)) \(what)\n"
        }
        for n in t.notes { s += "  note: \(n)\n" }
        if let f = t.fault {
            s += "  fault: \(f)\n"
        } else if let stop = t.stop {
            s += "  stop: \(stop)\n"
        } else if let pa = t.outputAddress, let leaf = t.steps.last {
            s += "  -> PA \(Hex.padded(pa)) (\(leaf.level.isLast ? "page" : "block") \(RegisterDecoding.size(granule.size(at: leaf.level)))) \(dec.attributes(leaf.descriptor))\n"
        }
        return s
    }
}

/// Records each lookup of a one-address walk and applies the architecture's
/// checks that the kernel-style walk does not make.
struct TraceVisitor<M: TableMemory>: Visitor {
    let inspector: TableInspector<M>
    let address: UInt64
    var table: UInt64
    var steps: [TranslationStep] = []
    var fault: TranslationFault?
    var notes: [String] = []
    var stop: String?

    init(inspector: TableInspector<M>, address: UInt64, table: UInt64) {
        self.inspector = inspector
        self.address = address
        self.table = table
    }

    var flags: WalkFlags { [.tablePre, .leaf] }

    static var stopCode: Int32 { KernelError.eperm.code }

    mutating func fail(_ kind: TranslationFault.Kind, _ level: Level, _ why: String) -> Int32 {
        fault = TranslationFault(kind: kind, level: level, reason: why, stage2: inspector.kind == .stage2)
        return Self.stopCode
    }

    mutating func unreachableTable(_ ctx: VisitContext, physicalAddress: UInt64) -> Int32 {
        stop = "the next-level table is not in the image: \(inspector.describeMiss(physicalAddress))"
        return Self.stopCode
    }

    mutating func visit(_ ctx: inout VisitContext, _ visit: Visit) -> Int32 {
        let g = inspector.granule
        let level = ctx.level
        let index = Int((address >> UInt64(g.shift(at: level))) & UInt64(g.entriesPerTable - 1))
        let d = ctx.old
        steps.append(TranslationStep(level: level, tablePhysicalAddress: table, index: index, descriptor: d))
        let oaBits = inspector.outputBits
        let format = inspector.format
        if d & KVMPT_PTE_VALID == 0 {
            return fail(.translation, level, d == 0 ? "empty entry" : "invalid entry (bit 0 clear)")
        }
        let pa = format.physical(fromPTE: d)
        if visit == .tablePre {
            if oaBits < 64, pa >> UInt64(oaBits) != 0 {
                return fail(.addressSize, level, "next-level table address \(Hex.short(pa)) is beyond the \(oaBits)-bit output size (PS)")
            }
            table = pa
            return 0
        }
        // A leaf.
        if level.isLast && d & KVMPT_PTE_TYPE == 0 {
            return fail(.translation, level, "reserved descriptor: block encoding (bits[1:0]=0b01) at level 3")
        }
        if !level.isLast && !Architecture.blockAllowed(granule: g, level: level, fiftyTwoBit: format.outputAddressBits == 52) {
            return fail(.translation, level, "block descriptor at level \(level.rawValue), where the \(g) granule allows none")
        }
        if oaBits < 64, pa >> UInt64(oaBits) != 0 {
            return fail(.addressSize, level, "output address \(Hex.short(pa)) is beyond the \(oaBits)-bit output size (PS)")
        }
        if d & KVMPT_S2_AF == 0 {
            if inspector.hardwareAccessFlag {
                notes.append("AF=0: the access flag is clear; with HA=1 the hardware sets it on first access (no fault)")
            } else {
                return fail(.accessFlag, level, "access flag clear (AF=0) and hardware AF management is off (HA=0)")
            }
        }
        return 0
    }
}

/// Architectural facts about descriptors that the kernel-style walker does
/// not check.
public enum Architecture {
    /// Whether a block descriptor is allowed at `level` (below level 3).
    ///
    /// 4K: levels 1 and 2, and level 0 with 52-bit (LPA2) descriptors;
    /// 16K: level 2, and level 1 with LPA2; 64K: level 2, and level 1 with
    /// 52-bit descriptors (FEAT_LPA).
    public static func blockAllowed(granule: Granule, level: Level, fiftyTwoBit: Bool) -> Bool {
        switch granule {
        case .size4K: return level.rawValue >= (fiftyTwoBit ? 0 : 1) && level.rawValue <= 2
        case .size16K, .size64K: return level.rawValue >= (fiftyTwoBit ? 1 : 2) && level.rawValue <= 2
        }
    }
}
