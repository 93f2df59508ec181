import CKVMPageTable

/// VTCR_EL2 + VTTBR_EL2 (stage-2) or TCR_EL2 + TTBR0_EL2 (hyp), decoded into
/// the fields that shape a walk, every inconsistency named as the Arm ARM
/// names it, and — when the registers describe a layout kvmpt walks — the
/// table geometry.
///
/// Hardware assumed when judging the registers: PARange 52 bits
/// (`AArch64.PAMax() = 52`), FEAT_LPA2 and FEAT_LVA present (DS may be set,
/// 64K may use 52-bit IPAs), FEAT_TTST absent (T0SZ at most 39).
public struct RegisterDecoding: Sendable {
    /// Stage-2 or hyp.
    public let kind: TableKind
    /// The register that controls the walk (VTCR_EL2 or TCR_EL2).
    public let control: UInt64
    /// The base register (VTTBR_EL2 or TTBR0_EL2).
    public let base: UInt64
    /// `T0SZ`.
    public let t0sz: Int
    /// The input address size `64 - T0SZ`.
    public let inputBits: Int
    /// The granule TG0 selects (nil for the reserved 0b11).
    public let granule: Granule?
    /// `SL0` (stage-2 only).
    public let sl0: UInt64
    /// `SL2` (stage-2 only).
    public let sl2: Bool
    /// `DS`: FEAT_LPA2 52-bit descriptors for 4K/16K.
    public let ds: Bool
    /// `PS` and the output size it selects (nil when reserved).
    public let ps: UInt64
    /// Output address bits (`PS`, with 0b110 read as 48 without 52-bit descriptors).
    public let outputBits: Int
    /// `SH0`, `ORGN0`, `IRGN0`.
    public let sh0: UInt64, orgn0: UInt64, irgn0: UInt64
    /// `HA`: hardware sets the access flag.
    public let ha: Bool
    /// `VS` (stage-2): 16-bit VMIDs.
    public let vs: Bool
    /// The start level the registers select (nil when reserved).
    public let startLevel: Level?
    /// The root table's PA (BADDR).
    public let rootPhysicalAddress: UInt64
    /// VMID (stage-2) from VTTBR_EL2[63:48].
    public let vmid: UInt64
    /// CnP (bit 0 of the base register).
    public let cnp: Bool
    /// HCR_EL2.FWB as the sidecar or the caller says (false when unknown).
    public let fwb: Bool
    /// Whether FWB was stated rather than assumed.
    public let fwbKnown: Bool
    /// Inconsistencies that make every walk fault (the MMU cannot use the
    /// registers as they are), named as the Arm ARM names them.
    public let errors: [String]
    /// Values that are legal but odd, or not what Linux programs.
    public let notes: [String]
    /// The geometry to walk, when the registers are usable and describe a
    /// layout kvmpt walks (the one Linux programs for this size).
    public let geometry: TableGeometry?

    /// Decodes the registers in `regs` (stage-2 when `vtcr` is present,
    /// hyp when `tcr` is); throws when neither pair is complete.
    public init(_ regs: ImageRegisters) throws(ImageError) {
        if let vtcr = regs.vtcr {
            guard let vttbr = regs.vttbr else { throw ImageError("vtcr is given but vttbr is missing (give --vttbr or a vttbr= line in IMG.regs)") }
            if regs.tcr != nil || regs.ttbr != nil {
                throw ImageError("both stage-2 (vtcr/vttbr) and hyp (tcr/ttbr) registers are given; give one pair")
            }
            self.init(kind: .stage2, control: vtcr, base: vttbr, fwb: regs.fwb)
        } else if let tcr = regs.tcr {
            guard let ttbr = regs.ttbr else { throw ImageError("tcr is given but ttbr is missing (give --ttbr or a ttbr= line in IMG.regs)") }
            self.init(kind: .hyp, control: tcr, base: ttbr, fwb: regs.fwb)
        } else {
            throw ImageError("no registers: give --vtcr and --vttbr (stage-2) or --tcr and --ttbr (hyp), or an IMG.regs sidecar")
        }
    }

    init(kind: TableKind, control c: UInt64, base b: UInt64, fwb: Bool?) {
        typealias K = KernelRegisters
        self.kind = kind
        self.control = c
        self.base = b
        self.fwb = fwb ?? false
        self.fwbKnown = fwb != nil
        let reg = kind == .stage2 ? "VTCR_EL2" : "TCR_EL2"
        let baseReg = kind == .stage2 ? "VTTBR_EL2" : "TTBR0_EL2"
        var errors: [String] = []
        var notes: [String] = []

        t0sz = Int(K.get(c, KVMPT_VTCR_T0SZ))
        inputBits = 64 - t0sz
        let tg = K.get(c, KVMPT_VTCR_TG0)
        switch tg {
        case KVMPT_TG0_4K: granule = .size4K
        case KVMPT_TG0_16K: granule = .size16K
        case KVMPT_TG0_64K: granule = .size64K
        default:
            granule = nil
            errors.append("\(reg).TG0=0b11 is a reserved value (no translation granule selected)")
        }
        sl0 = kind == .stage2 ? K.get(c, KVMPT_VTCR_SL0) : 0
        sl2 = kind == .stage2 && c & KVMPT_VTCR_SL2 != 0
        ds = c & (kind == .stage2 ? KVMPT_VTCR_DS : KVMPT_TCR_EL2_DS) != 0
        ps = K.get(c, kind == .stage2 ? KVMPT_VTCR_PS : KVMPT_TCR_EL2_PS)
        sh0 = K.get(c, KVMPT_VTCR_SH0)
        orgn0 = K.get(c, KVMPT_VTCR_ORGN0)
        irgn0 = K.get(c, KVMPT_VTCR_IRGN0)
        ha = c & KVMPT_VTCR_HA != 0
        vs = kind == .stage2 && c & KVMPT_VTCR_VS != 0

        let lpa2 = ds && granule != nil && granule != .size64K
        let fiftyTwo = lpa2 || granule == .size64K
        if ds && granule == .size64K {
            notes.append("\(reg).DS is set with TG0=64KB: DS applies to the 4KB and 16KB granules only (ignored)")
        }
        if ps == 6 && !fiftyTwo {
            notes.append("\(reg).PS=0b110 (52 bits) with 48-bit descriptors: treated as 48 bits")
        }
        if let bits = K.psBits(ps) {
            outputBits = min(bits, fiftyTwo ? 52 : 48)
        } else {
            outputBits = fiftyTwo ? 52 : 48
            errors.append("\(reg).PS=0b\(String(ps, radix: 2)) is a reserved value (not a supported physical address size)")
        }
        if sh0 == 1 {
            notes.append("\(reg).SH0=0b01 is reserved (CONSTRAINED UNPREDICTABLE: treated as another shareability)")
        }
        let res1 = kind == .stage2 ? KVMPT_VTCR_RES1 : KVMPT_TCR_EL2_RES1
        if c & res1 != res1 {
            notes.append("\(reg) RES1 bit(s) \(Self.bitList(res1 & ~c)) clear")
        }

        // Start level.
        var start: Level?
        if let g = granule {
            let stride = Int(g.bitsPerLevel)
            let gbits = Int(g.pageShift)
            // T0SZ range: AArch64.S2TxSZFaults / AArch64.S1TxSZFaults.
            let minT0SZ = fiftyTwo ? 12 : 16
            let maxT0SZ = 39
            let txszOK = t0sz >= minT0SZ && t0sz <= maxT0SZ
            if !txszOK {
                errors.append("\(reg).T0SZ=\(t0sz) is out of range for TG0=\(Self.tgName(g))\(lpa2 ? " with DS=1" : ""): \(minT0SZ)...\(maxT0SZ) (\(64 - maxT0SZ)...\(64 - minT0SZ)-bit input addresses); a translation fault at level 0 (T0SZ out of range)")
            }
            if kind == .stage2 {
                // AArch64.S2InvalidSL.
                var invalid = false
                switch g {
                case .size4K:
                    switch (sl2, sl0) {
                    case (true, 0): start = Level(-1); invalid = !ds
                    case (true, _): invalid = true
                    case (false, 0): start = Level(2)
                    case (false, 1): start = Level(1)
                    case (false, 2): start = Level(0)
                    default: invalid = true  // 0b011: level 3 needs FEAT_TTST
                    }
                case .size16K:
                    switch sl0 {
                    case 0: start = Level(3)
                    case 1: start = Level(2)
                    case 2: start = Level(1)
                    default: start = Level(0); invalid = !ds
                    }
                    if sl2 { notes.append("VTCR_EL2.SL2 is set with TG0=16KB (RES0)") }
                case .size64K:
                    switch sl0 {
                    case 0: start = Level(3)
                    case 1: start = Level(2)
                    case 2: start = Level(1)
                    default: invalid = true
                    }
                    if sl2 { notes.append("VTCR_EL2.SL2 is set with TG0=64KB (RES0)") }
                }
                if invalid {
                    start = nil
                    errors.append("VTCR_EL2.SL0=0b\(Self.bin2(sl0))\(sl2 ? " with SL2=1" : "") is a reserved value for TG0=\(Self.tgName(g))\(ds ? "" : " and DS=0") (AArch64.S2InvalidSL): a stage 2 translation fault at level 0")
                } else if let s = start, txszOK {
                    // AArch64.S2InconsistentSL.
                    let below = 3 - Int(s.rawValue)
                    let minIA = below * stride + gbits + 1
                    let maxIA = (below + 1) * stride + gbits + 4
                    if inputBits < minIA || inputBits > maxIA {
                        errors.append("VTCR_EL2.SL0 (start level \(s.rawValue)) is inconsistent with VTCR_EL2.T0SZ=\(t0sz) (AArch64.S2InconsistentSL): a \(inputBits)-bit IPA needs \(inputBits > maxIA ? "more than 16 concatenated tables" : "fewer levels") at that start level (it allows \(minIA)...\(maxIA) bits); a stage 2 translation fault at level 0")
                    }
                }
            } else if txszOK {
                let levels = (inputBits - 4) / stride
                start = Level(Int8(4 - levels))
            }
        }
        startLevel = start

        // Base register.
        cnp = b & 1 != 0
        vmid = kind == .stage2 ? b >> 48 : 0
        let root = K.root(fromTTBR: b & 0x0000_ffff_ffff_ffff, fiftyTwoBit: fiftyTwo)
        rootPhysicalAddress = root
        if kind == .hyp && b >> 48 != 0 {
            notes.append("TTBR0_EL2[63:48]=\(Hex.short(b >> 48)) (ASID) is ignored at EL2 without E2H")
        }
        if outputBits < 64, root >> UInt64(outputBits) != 0 {
            errors.append("\(baseReg).BADDR=\(Hex.short(root)) is beyond the \(outputBits)-bit output size \(reg).PS allows: an address size fault at level 0")
        }

        // Geometry.
        var geometry: TableGeometry?
        if errors.isEmpty, let g = granule, let s = start {
            do throws(TableGeometry.Refusal) {
                let geo: TableGeometry = kind == .stage2
                    ? try .stage2(granule: g, iaBits: inputBits, lpa2: lpa2)
                    : try .hyp(granule: g, vaBits: inputBits, lpa2: lpa2)
                if geo.startLevel != s {
                    errors.append("\(reg).SL0 selects start level \(s.rawValue), a layout Linux never programs for a \(inputBits)-bit IPA (kvm_get_vtcr() starts at level \(geo.startLevel.rawValue) with \(geo.rootPages) concatenated page\(geo.rootPages == 1 ? "" : "s")); kvmpt walks only that layout")
                } else {
                    let rootBytes = UInt64(geo.rootPages) &* g.pageSize
                    if root & (rootBytes - 1) != 0 {
                        let lowBits = root & (rootBytes - 1)
                        if lowBits & (g.pageSize - 1) != 0 {
                            errors.append("\(baseReg).BADDR=\(Hex.short(root)) is not aligned to the \(geo.rootPages == 1 ? "" : "concatenated ")initial lookup table (\(Self.size(rootBytes))): BADDR[\(rootBytes.trailingZeroBitCount - 1):1] are RES0")
                        } else {
                            notes.append("\(baseReg).BADDR=\(Hex.short(root)) is not aligned to the \(Self.size(rootBytes)) of \(geo.rootPages) concatenated tables (BADDR[\(rootBytes.trailingZeroBitCount - 1):1] are RES0)")
                        }
                    }
                    if errors.isEmpty { geometry = geo }
                }
            } catch {
                errors.append("\(reg).T0SZ=\(t0sz): \(error.message)")
            }
        }
        self.geometry = geometry
        self.errors = errors
        self.notes = notes
    }

    /// The register dump `decode --regs` prints, one field a line.
    public var text: String {
        let reg = kind == .stage2 ? "VTCR_EL2" : "TCR_EL2"
        let baseReg = kind == .stage2 ? "VTTBR_EL2" : "TTBR0_EL2"
        var s = "\(reg)=\(Hex.padded(control))\n"
        s += "  T0SZ=\(t0sz) (\(inputBits)-bit \(kind == .stage2 ? "IPA" : "VA"))\n"
        if kind == .stage2 {
            s += "  SL0=0b\(Self.bin2(sl0)) SL2=\(sl2 ? 1 : 0)"
            if let l = startLevel { s += " (start level \(l.rawValue))" } else { s += " (reserved)" }
            s += "\n"
        } else if let l = startLevel {
            s += "  start level \(l.rawValue) (from T0SZ and TG0)\n"
        }
        s += "  TG0=0b\(Self.bin2(KernelRegisters.get(control, KVMPT_VTCR_TG0))) (\(granule.map(Self.tgName) ?? "reserved"))\n"
        s += "  PS=0b\(String(ps, radix: 2)) (\(KernelRegisters.psBits(ps).map { "\($0) bits" } ?? "reserved")\(KernelRegisters.psBits(ps) != outputBits ? ", used as \(outputBits) bits" : ""))\n"
        s += "  DS=\(ds ? 1 : 0)\(ds && granule != .size64K ? " (LPA2 52-bit descriptors)" : "")\n"
        s += "  SH0=0b\(Self.bin2(sh0)) (\(Self.shName(sh0))) ORGN0=0b\(Self.bin2(orgn0)) (\(Self.cacheName(orgn0))) IRGN0=0b\(Self.bin2(irgn0)) (\(Self.cacheName(irgn0)))\n"
        s += "  HA=\(ha ? 1 : 0)"
        if kind == .stage2 { s += " VS=\(vs ? 1 : 0) (\(vs ? 16 : 8)-bit VMID)" }
        s += "\n"
        s += "\(baseReg)=\(Hex.padded(base))\n"
        s += "  BADDR=\(Hex.padded(rootPhysicalAddress))"
        if kind == .stage2 { s += " VMID=\(vmid)" }
        s += " CnP=\(cnp ? 1 : 0)\n"
        if kind == .stage2 {
            s += "HCR_EL2.FWB=\(fwb ? 1 : 0)\(fwbKnown ? "" : " (assumed: not in the sidecar)")\n"
        }
        if let g = geometry {
            s += "geometry: \(kind) granule=\(g.granule) \(kind == .stage2 ? "ia_bits" : "va_bits")=\(g.inputBits) start_level=\(g.startLevel.rawValue) root_pages=\(g.rootPages) lpa2=\(g.lpa2 ? 1 : 0) oa_bits=\(outputBits)\n"
        }
        for n in notes { s += "note: \(n)\n" }
        for e in errors { s += "error: \(e)\n" }
        return s
    }

    /// The geometry, or an error listing every inconsistency.
    public func requireGeometry() throws(ImageError) -> TableGeometry {
        if let geometry { return geometry }
        throw ImageError(errors.isEmpty ? "the registers describe no table kvmpt can walk" : errors.joined(separator: "\n"))
    }

    static func tgName(_ g: Granule) -> String {
        switch g {
        case .size4K: "4KB"
        case .size16K: "16KB"
        case .size64K: "64KB"
        }
    }

    static func bin2(_ v: UInt64) -> String {
        let s = String(v, radix: 2)
        return s.count < 2 ? "0" + s : s
    }

    static func shName(_ v: UInt64) -> String {
        switch v {
        case 0: "Non-shareable"
        case 2: "Outer Shareable"
        case 3: "Inner Shareable"
        default: "reserved"
        }
    }

    static func cacheName(_ v: UInt64) -> String {
        switch v {
        case 0: "Non-cacheable"
        case 1: "Write-Back Read-Allocate Write-Allocate"
        case 2: "Write-Through Read-Allocate No Write-Allocate"
        default: "Write-Back Read-Allocate No Write-Allocate"
        }
    }

    static func bitList(_ mask: UInt64) -> String {
        (0..<64).filter { mask >> UInt64($0) & 1 != 0 }.map(String.init).joined(separator: ",")
    }

    /// `4K`, `2M`, `1G`: the largest binary unit that divides `bytes`.
    public static func size(_ bytes: UInt64) -> String {
        if bytes == 0 { return "0" }
        let units = ["", "K", "M", "G", "T", "P", "E"]
        var v = bytes
        var u = 0
        while v & 1023 == 0 && u + 1 < units.count {
            v >>= 10
            u += 1
        }
        return "\(v)\(units[u])"
    }
}
