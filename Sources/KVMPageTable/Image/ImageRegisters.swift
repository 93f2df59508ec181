import CKVMPageTable

/// Why an image, its sidecar or its registers cannot be decoded: a message
/// that names the file, field or address at fault.
public struct ImageError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong, naming the file, register field or address.
    public let message: String
    /// An error with `message`.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}

/// The register values that describe a saved table: the `IMG.regs` sidecar.
///
/// The sidecar is plain text, one `key=0x…` a line (`#` starts a comment):
///
/// - `base`: the physical address of the image's byte 0;
/// - `vtcr`, `vttbr`: VTCR_EL2 and VTTBR_EL2 of a stage-2 table;
/// - `tcr`, `ttbr`: TCR_EL2 and TTBR0_EL2 of a hyp (nVHE EL2 stage-1) table;
/// - `fwb` (optional): HCR_EL2.FWB, `0x1` when FEAT_S2FWB is in use. It is
///   not part of VTCR_EL2 but changes what a stage-2 MemAttr means.
public struct ImageRegisters: Hashable, Sendable {
    /// Physical address of the image's first byte.
    public var base: UInt64?
    /// VTCR_EL2.
    public var vtcr: UInt64?
    /// VTTBR_EL2.
    public var vttbr: UInt64?
    /// TCR_EL2 (nVHE).
    public var tcr: UInt64?
    /// TTBR0_EL2.
    public var ttbr: UInt64?
    /// HCR_EL2.FWB.
    public var fwb: Bool?

    /// Registers; any may be missing.
    public init(base: UInt64? = nil, vtcr: UInt64? = nil, vttbr: UInt64? = nil,
                tcr: UInt64? = nil, ttbr: UInt64? = nil, fwb: Bool? = nil) {
        self.base = base
        self.vtcr = vtcr
        self.vttbr = vttbr
        self.tcr = tcr
        self.ttbr = ttbr
        self.fwb = fwb
    }

    /// `other`'s values where it has them, ours elsewhere.
    public func overridden(by other: ImageRegisters) -> ImageRegisters {
        ImageRegisters(base: other.base ?? base, vtcr: other.vtcr ?? vtcr, vttbr: other.vttbr ?? vttbr,
                       tcr: other.tcr ?? tcr, ttbr: other.ttbr ?? ttbr, fwb: other.fwb ?? fwb)
    }

    /// Parses sidecar text; errors name `fileName` and the line.
    public static func parse(_ text: String, fileName: String) throws(ImageError) -> ImageRegisters {
        var regs = ImageRegisters()
        var lineNumber = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = Substring(raw)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let trimmed = line.trimmingSpaces()
            if trimmed.isEmpty { continue }
            guard let eq = trimmed.firstIndex(of: "=") else {
                throw ImageError("\(fileName):\(lineNumber): expected key=0x…, found '\(trimmed)'")
            }
            let key = trimmed[..<eq].trimmingSpaces()
            let valueText = trimmed[trimmed.index(after: eq)...].trimmingSpaces()
            guard let value = parseNumber(valueText) else {
                throw ImageError("\(fileName):\(lineNumber): \(key): '\(valueText)' is not a number")
            }
            switch key {
            case "base": regs.base = value
            case "vtcr": regs.vtcr = value
            case "vttbr": regs.vttbr = value
            case "tcr": regs.tcr = value
            case "ttbr": regs.ttbr = value
            case "fwb":
                guard value <= 1 else { throw ImageError("\(fileName):\(lineNumber): fwb must be 0x0 or 0x1") }
                regs.fwb = value == 1
            default:
                throw ImageError("\(fileName):\(lineNumber): unknown key '\(key)' (expected base, vtcr, vttbr, tcr, ttbr, fwb)")
            }
        }
        return regs
    }

    /// The sidecar text, keys in a fixed order.
    public var text: String {
        var s = ""
        if let base { s += "base=\(Hex.short(base))\n" }
        if let vtcr { s += "vtcr=\(Hex.short(vtcr))\n" }
        if let vttbr { s += "vttbr=\(Hex.short(vttbr))\n" }
        if let tcr { s += "tcr=\(Hex.short(tcr))\n" }
        if let ttbr { s += "ttbr=\(Hex.short(ttbr))\n" }
        if let fwb { s += "fwb=\(fwb ? "0x1" : "0x0")\n" }
        return s
    }

    /// Parses `0x…` hex or decimal (with `_` separators allowed).
    public static func parseNumber<S: StringProtocol>(_ s: S) -> UInt64? {
        let t = s.replacingOccurrences(of: "_", with: "")
        if t.hasPrefix("0x") || t.hasPrefix("0X") { return UInt64(t.dropFirst(2), radix: 16) }
        return UInt64(t, radix: 10)
    }
}

extension StringProtocol {
    func trimmingSpaces() -> Substring {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s.removeLast() }
        return s
    }

    func replacingOccurrences(of a: Character, with b: String) -> String {
        var out = ""
        for c in self { if c == a { out += b } else { out.append(c) } }
        return out
    }
}

// MARK: - What the kernel programs

/// Register values as Linux programs them for a table, under these
/// documented feature assumptions:
///
/// - ID_AA64MMFR0_EL1.PARange is 52 bits, and `kvm_get_parange()` clamps it
///   to what the kernel can use: VTCR_EL2.PS / TCR_EL2.PS = 0b110 (52 bits)
///   for the 64K granule (`CONFIG_ARM64_PA_BITS_52`) or with LPA2, else
///   0b101 (48 bits);
/// - `CONFIG_ARM64_HW_AFDBM` without the Ampere AC03 erratum: VTCR_EL2.HA set;
/// - 16-bit VMIDs: VTCR_EL2.VS set;
/// - LPA2: VTCR_EL2.DS / TCR_EL2.DS set;
/// - VTTBR_EL2 = the root's PA as `kvm_get_vttbr()` writes it
///   (`phys_to_ttbr`: PA[51:48] in bits [5:2] for 52-bit formats), VMID 0,
///   CnP 0; TTBR0_EL2 likewise, CnP 0;
/// - TCR_EL2 is the nVHE value `cpu_prepare_hyp_mode()` derives from
///   Linux's TCR_EL1: TG0, SH0 inner, ORGN0/IRGN0 write-back
///   write-allocate, T0SZ = 64 - va_bits, PS, RES1 bits 31 and 23, DS with
///   LPA2; HA/HD are not set.
public enum KernelRegisters {
    /// The PS encoding for an output size in bits (32 … 52).
    public static func psEncoding(bits: Int) -> UInt64 {
        switch bits {
        case ...32: 0
        case 33...36: 1
        case 37...40: 2
        case 41...42: 3
        case 43...44: 4
        case 45...48: 5
        default: 6
        }
    }

    /// Output address bits for a PS encoding (nil for reserved values).
    public static func psBits(_ ps: UInt64) -> Int? {
        switch ps {
        case 0: 32
        case 1: 36
        case 2: 40
        case 3: 42
        case 4: 44
        case 5: 48
        case 6: 52
        default: nil
        }
    }

    /// The TG0 encoding for a granule.
    public static func tg0(_ granule: Granule) -> UInt64 {
        switch granule {
        case .size4K: KVMPT_TG0_4K
        case .size16K: KVMPT_TG0_16K
        case .size64K: KVMPT_TG0_64K
        }
    }

    /// The PA size the kernel programs for a format (see the type's notes).
    public static func outputBits(_ format: DescriptorFormat) -> Int { format.outputAddressBits }

    /// `kvm_get_vtcr()` for a stage-2 geometry.
    public static func vtcr(_ g: TableGeometry) -> UInt64 {
        var v = KVMPT_VTCR_RES1
        v |= field(KVMPT_VTCR_SH0, 3)       // VTCR_EL2_SH0_INNER
        v |= field(KVMPT_VTCR_ORGN0, 1)     // VTCR_EL2_ORGN0_WBWA
        v |= field(KVMPT_VTCR_IRGN0, 1)     // VTCR_EL2_IRGN0_WBWA
        v |= field(KVMPT_VTCR_TG0, tg0(g.granule))
        v |= field(KVMPT_VTCR_PS, psEncoding(bits: outputBits(g.format)))
        v |= field(KVMPT_VTCR_T0SZ, UInt64(64 - g.inputBits))
        // VTCR_EL2_LVLS_TO_SL0(levels) = TGRAN_SL0_BASE - (4 - levels).
        let base: Int = g.granule == .size4K ? 2 : 3
        v |= field(KVMPT_VTCR_SL0, UInt64(base - Int(g.startLevel.rawValue)))
        v |= KVMPT_VTCR_HA
        if g.lpa2 { v |= KVMPT_VTCR_DS }
        v |= KVMPT_VTCR_VS
        return v
    }

    /// TCR_EL2 (nVHE) for a hyp geometry.
    public static func tcr(_ g: TableGeometry) -> UInt64 {
        var v = KVMPT_TCR_EL2_RES1
        v |= field(KVMPT_VTCR_SH0, 3)
        v |= field(KVMPT_VTCR_ORGN0, 1)
        v |= field(KVMPT_VTCR_IRGN0, 1)
        v |= field(KVMPT_VTCR_TG0, tg0(g.granule))
        v |= field(KVMPT_TCR_EL2_PS, psEncoding(bits: outputBits(g.format)))
        v |= field(KVMPT_VTCR_T0SZ, UInt64(64 - g.inputBits))
        if g.lpa2 { v |= KVMPT_TCR_EL2_DS }
        return v
    }

    /// `phys_to_ttbr()`: BADDR, with PA[51:48] in bits [5:2] for 52-bit formats.
    public static func ttbr(root pa: UInt64, format: DescriptorFormat) -> UInt64 {
        if format.outputAddressBits == 52 {
            return (pa | (pa >> 46)) & ttbrBaddrMask52
        }
        return pa & ttbrBaddrMask48
    }

    /// The root PA a TTBR holds (inverse of ``ttbr(root:format:)``).
    public static func root(fromTTBR ttbr: UInt64, fiftyTwoBit: Bool) -> UInt64 {
        if fiftyTwoBit {
            return (ttbr & ttbrBaddrMask52 & ~0x3c) | (((ttbr >> 2) & 0xf) << 48)
        }
        return ttbr & ttbrBaddrMask48
    }

    /// TTBR_BADDR_MASK_52: GENMASK(47, 2).
    static let ttbrBaddrMask52: UInt64 = 0x0000_ffff_ffff_fffc
    /// BADDR[47:1].
    static let ttbrBaddrMask48: UInt64 = 0x0000_ffff_ffff_fffe

    /// The sidecar values for a live table.
    public static func registers(for table: any PageTable) -> ImageRegisters {
        let g = table.geometry
        let ttbr = ttbr(root: table.rootPhysicalAddress, format: g.format)
        var regs = ImageRegisters(base: table.arena.basePhysicalAddress)
        switch g.kind {
        case .stage2:
            regs.vtcr = vtcr(g)
            regs.vttbr = ttbr
            if let s2 = table as? Stage2PageTable { regs.fwb = s2.features.contains(.fwb) }
        case .hyp:
            regs.tcr = tcr(g)
            regs.ttbr = ttbr
        }
        return regs
    }

    /// `value` placed in the field `mask`.
    @inlinable
    public static func field(_ mask: UInt64, _ value: UInt64) -> UInt64 {
        (value << UInt64(mask.trailingZeroBitCount)) & mask
    }

    /// The field `mask` of `reg`.
    @inlinable
    public static func get(_ reg: UInt64, _ mask: UInt64) -> UInt64 {
        (reg & mask) >> UInt64(mask.trailingZeroBitCount)
    }
}
