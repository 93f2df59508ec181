/// Which kind of table a script drives.
public enum TableKind: String, Sendable, Hashable {
    /// A guest stage-2 table (`kvm_pgtable_stage2_*`).
    case stage2
    /// The hypervisor's own stage-1 table (`kvm_pgtable_hyp_*`).
    case hyp
}

/// The first statement of a script: which table to build.
public struct ScriptConfiguration: Hashable, Sendable {
    /// Stage-2 or hyp.
    public var kind: TableKind
    /// The translation granule.
    public var granule: Granule
    /// `ia_bits` for stage-2, `va_bits` for hyp.
    public var inputBits: Int
    /// FEAT_S2FWB (stage-2 only).
    public var fwb: Bool
    /// FEAT_LPA2 52-bit descriptors (4K/16K only).
    public var lpa2: Bool
    /// FEAT_TLBIRANGE (stage-2 only).
    public var tlbiRange: Bool

    /// A configuration; nothing is validated until a table is built from it.
    public init(kind: TableKind, granule: Granule, inputBits: Int,
                fwb: Bool = false, lpa2: Bool = false, tlbiRange: Bool = false) {
        self.kind = kind
        self.granule = granule
        self.inputBits = inputBits
        self.fwb = fwb
        self.lpa2 = lpa2
        self.tlbiRange = tlbiRange
    }
}

/// One operation of a script, with its operands as numbers.
public enum Operation: Hashable, Sendable {
    /// `map ADDR SIZE PHYS PROT`.
    case map(addr: UInt64, size: UInt64, phys: UInt64, prot: Prot)
    /// `unmap ADDR SIZE`.
    case unmap(addr: UInt64, size: UInt64)
    /// `ioremap ADDR SIZE PHYS [ro]`: one page a step.
    case ioremap(addr: UInt64, size: UInt64, phys: UInt64, readOnly: Bool)
    /// `ioremap_block ADDR SIZE PHYS [ro]`: the largest block a step.
    case ioremapBlock(addr: UInt64, size: UInt64, phys: UInt64, readOnly: Bool)
    /// `wrprotect ADDR SIZE`.
    case wrprotect(addr: UInt64, size: UInt64)
    /// `mkyoung ADDR`.
    case mkyoung(addr: UInt64)
    /// `test_clear_young ADDR SIZE [mkold]`.
    case testClearYoung(addr: UInt64, size: UInt64, mkold: Bool)
    /// `relax_perms ADDR PROT`.
    case relaxPerms(addr: UInt64, prot: Prot)
    /// `flush ADDR SIZE`.
    case flush(addr: UInt64, size: UInt64)
    /// `split ADDR SIZE`.
    case split(addr: UInt64, size: UInt64)
    /// `get_leaf ADDR`.
    case getLeaf(addr: UInt64)
    /// `limit_pages N`.
    case limitPages(UInt64)
    /// `dump`.
    case dump
    /// `summary`.
    case summary
    /// `ptdump`.
    case ptdump

    /// Whether only a stage-2 table accepts this operation.
    public var isStage2Only: Bool {
        switch self {
        case .map, .unmap, .getLeaf, .limitPages, .dump, .summary: false
        default: true
        }
    }

    /// The statement keyword.
    public var keyword: String {
        switch self {
        case .map: "map"
        case .unmap: "unmap"
        case .ioremap: "ioremap"
        case .ioremapBlock: "ioremap_block"
        case .wrprotect: "wrprotect"
        case .mkyoung: "mkyoung"
        case .testClearYoung: "test_clear_young"
        case .relaxPerms: "relax_perms"
        case .flush: "flush"
        case .split: "split"
        case .getLeaf: "get_leaf"
        case .limitPages: "limit_pages"
        case .dump: "dump"
        case .summary: "summary"
        case .ptdump: "ptdump"
        }
    }

    /// The statement as transcripts echo it: keyword, numbers as `0x` hex
    /// without leading zeros, PROT letters in the order `rwxdn`.
    public var normalized: String {
        func h(_ v: UInt64) -> String { Hex.short(v) }
        switch self {
        case let .map(a, s, p, prot): return "map \(h(a)) \(h(s)) \(h(p)) \(prot.letters)"
        case let .unmap(a, s): return "unmap \(h(a)) \(h(s))"
        case let .ioremap(a, s, p, ro): return "ioremap \(h(a)) \(h(s)) \(h(p))" + (ro ? " ro" : "")
        case let .ioremapBlock(a, s, p, ro): return "ioremap_block \(h(a)) \(h(s)) \(h(p))" + (ro ? " ro" : "")
        case let .wrprotect(a, s): return "wrprotect \(h(a)) \(h(s))"
        case let .mkyoung(a): return "mkyoung \(h(a))"
        case let .testClearYoung(a, s, mkold): return "test_clear_young \(h(a)) \(h(s))" + (mkold ? " mkold" : "")
        case let .relaxPerms(a, prot): return "relax_perms \(h(a)) \(prot.letters)"
        case let .flush(a, s): return "flush \(h(a)) \(h(s))"
        case let .split(a, s): return "split \(h(a)) \(h(s))"
        case let .getLeaf(a): return "get_leaf \(h(a))"
        case let .limitPages(n): return "limit_pages \(h(n))"
        case .dump: return "dump"
        case .summary: return "summary"
        case .ptdump: return "ptdump"
        }
    }
}

/// An operation and the script line it came from.
public struct Statement: Hashable, Sendable {
    /// What to do.
    public var operation: Operation
    /// The 1-based line number in the script.
    public var line: Int

    /// A statement.
    public init(operation: Operation, line: Int) {
        self.operation = operation
        self.line = line
    }
}

/// A parsed script: the configuration and the operations in order.
public struct Script: Hashable, Sendable {
    /// The name errors are reported under (a path, or `-`).
    public var fileName: String
    /// The first statement.
    public var configuration: ScriptConfiguration
    /// Every later statement.
    public var statements: [Statement]

    /// A script.
    public init(fileName: String, configuration: ScriptConfiguration, statements: [Statement]) {
        self.fileName = fileName
        self.configuration = configuration
        self.statements = statements
    }
}

/// An invalid script: where, and what was wrong.
public struct ScriptError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The file name as given.
    public var fileName: String
    /// The 1-based line number.
    public var line: Int
    /// What was wrong, naming the field.
    public var message: String

    /// An error at a line.
    public init(fileName: String, line: Int, message: String) {
        self.fileName = fileName
        self.line = line
        self.message = message
    }

    /// `FILE:LINE: message`, as printed on standard error.
    public var description: String { "\(fileName):\(line): \(message)" }
}
