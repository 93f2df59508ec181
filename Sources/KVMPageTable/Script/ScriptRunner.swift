/// Replays a script against a fresh table and writes the transcript.
///
/// The transcript is FORMAT.md's: a header line with the derived geometry,
/// then per operation the normalised statement, ` = `, the result, ` | `
/// and the maintenance it issued; `dump`, `summary` and `ptdump` print
/// their views.
public struct ScriptRunner {
    /// The table being driven.
    public enum Table {
        /// A stage-2 table.
        case stage2(Stage2PageTable)
        /// A hyp stage-1 table.
        case hyp(HypPageTable)

        /// The table as the protocol both conform to.
        public var pageTable: any PageTable {
            switch self {
            case let .stage2(t): t
            case let .hyp(t): t
            }
        }
    }

    /// The script.
    public let script: Script
    /// The table it drives.
    public let table: Table

    /// Builds the table the script's configuration describes.
    public init(script: Script) throws {
        self.script = script
        switch script.configuration.kind {
        case .stage2: table = .stage2(try Stage2PageTable(script.configuration))
        case .hyp: table = .hyp(try HypPageTable(script.configuration))
        }
    }

    /// The transcript's first line.
    public var header: String {
        let c = script.configuration
        let g = table.pageTable.geometry
        switch c.kind {
        case .stage2:
            return "# kvmpt v1 stage2 granule=\(c.granule) ia_bits=\(c.inputBits) start_level=\(g.startLevel.rawValue) root_pages=\(g.rootPages) fwb=\(c.fwb ? 1 : 0) lpa2=\(c.lpa2 ? 1 : 0) tlbi_range=\(c.tlbiRange ? 1 : 0)"
        case .hyp:
            return "# kvmpt v1 hyp granule=\(c.granule) va_bits=\(c.inputBits) start_level=\(g.startLevel.rawValue) root_pages=\(g.rootPages) lpa2=\(c.lpa2 ? 1 : 0)"
        }
    }

    /// Runs every statement, handing each finished piece of text to `write`
    /// (the header first); `after` is called after each statement.
    public func run(write: (String) -> Void, after: (Statement) -> Void = { _ in }) {
        write(header + "\n")
        for statement in script.statements {
            execute(statement.operation, write: write)
            after(statement)
        }
    }

    /// The whole transcript as one string.
    public func transcript() -> String {
        var out = ""
        run { out += $0 }
        return out
    }

    /// Runs one operation and returns its transcript text (with newline).
    public func execute(_ op: Operation) -> String {
        var out = ""
        execute(op, write: { out += $0 })
        return out
    }

    /// Runs one operation, handing its transcript text to `write` in pieces
    /// (a large dump streams in chunks instead of being built whole).
    public func execute(_ op: Operation, write: (String) -> Void) {
        if case .dump = op {
            write("dump\n")
            withoutActuallyEscaping(write) { w in
                var sink = ChunkedText(flush: w)
                sink = table.pageTable.walker.canonicalDump(into: sink).sink
                sink.finish()
            }
            write("end\n")
            return
        }
        write(text(of: op))
    }

    func text(of op: Operation) -> String {
        let pt = table.pageTable
        let walker = pt.walker
        switch op {
        case .dump:
            return "dump\n" + walker.canonicalDumpText() + "end\n"
        case .summary:
            return walker.summary().description + "\n"
        case .ptdump:
            return "ptdump\n" + ptdumpText(walker) + "end\n"
        default:
            let (result, issued) = perform(op)
            let m: Maintenance
            if let issued {
                m = issued
            } else {
                switch table {
                case let .stage2(t): m = t.lastMaintenance
                case let .hyp(t): m = t.lastMaintenance
                }
            }
            return "\(op.normalized) = \(result) | \(m)\n"
        }
    }

    func ptdumpText(_ walker: Walker<PageArena>) -> String {
        var printer = PtdumpPrinter(inputBits: walker.geometry.inputBits,
                                    startLevel: walker.geometry.startLevel,
                                    granule: walker.geometry.granule)
        var v = PtdumpVisitor(printer: printer)
        _ = walker.walk(0, size: walker.geometry.inputLimit, visitor: &v)
        printer = v.printer
        return printer.text
    }

    /// Performs an operation and formats its result field; the maintenance
    /// is given for statements that are not table operations (they issue
    /// nothing), nil where the table recorded it.
    func perform(_ op: Operation) -> (String, Maintenance?) {
        let pt = table.pageTable
        switch op {
        case let .getLeaf(a):
            do throws(KernelError) {
                let (level, d) = try pt.leaf(at: a)
                return ("0 level=\(level.rawValue) pte=\(Hex.padded(d.rawValue))", Maintenance())
            } catch {
                return (error.description, Maintenance())
            }
        case let .limitPages(n):
            pt.arena.budget = Int(clamping: n)
            return ("0", Maintenance())
        case .dump, .summary, .ptdump:
            return ("0", Maintenance())
        default:
            return (performOperation(op), nil)
        }
    }

    /// Performs a table operation and formats its result field.
    func performOperation(_ op: Operation) -> String {
        func code(_ body: () throws(KernelError) -> Void) -> String {
            do throws(KernelError) {
                try body()
                return "0"
            } catch {
                return error.description
            }
        }
        switch table {
        case let .stage2(t):
            switch op {
            case let .map(a, s, p, prot): return code { () throws(KernelError) in try t.map(a, size: s, to: p, prot: prot) }
            case let .unmap(a, s): return code { () throws(KernelError) in try t.unmap(a, size: s) }
            case let .ioremap(a, s, p, ro): return code { () throws(KernelError) in try t.ioremap(a, size: s, to: p, writable: !ro) }
            case let .ioremapBlock(a, s, p, ro): return code { () throws(KernelError) in try t.ioremapBlocks(a, size: s, to: p, writable: !ro) }
            case let .wrprotect(a, s): return code { () throws(KernelError) in try t.writeProtect(a, size: s) }
            case let .mkyoung(a):
                t.makeYoung(a)
                return "0"
            case let .testClearYoung(a, s, mkold): return t.testClearYoung(a, size: s, mkold: mkold) ? "1" : "0"
            case let .relaxPerms(a, prot): return code { () throws(KernelError) in try t.relaxPermissions(a, prot: prot) }
            case let .flush(a, s): return code { () throws(KernelError) in try t.flush(a, size: s) }
            case let .split(a, s): return code { () throws(KernelError) in try t.split(a, size: s) }
            case .getLeaf, .limitPages, .dump, .summary, .ptdump: return "0"
            }
        case let .hyp(t):
            switch op {
            case let .map(a, s, p, prot): return code { () throws(KernelError) in try t.map(a, size: s, to: p, prot: prot) }
            case let .unmap(a, s): return Hex.short(t.unmap(a, size: s))
            default: return KernelError.einval.description
            }
        }
    }
}

/// Dump lines gathered into chunks of about 64 KiB and handed on as text.
struct ChunkedText: DumpSink {
    let flush: (String) -> Void
    var bytes: [UInt8] = []

    init(flush: @escaping (String) -> Void) {
        self.flush = flush
        bytes.reserveCapacity(1 << 16)
    }

    mutating func emit(_ line: UnsafeBufferPointer<UInt8>) {
        bytes.append(contentsOf: line)
        bytes.append(0x0a)
        if bytes.count >= 1 << 16 { finish() }
    }

    mutating func finish() {
        if !bytes.isEmpty { flush(String(decoding: bytes, as: UTF8.self)) }
        bytes.removeAll(keepingCapacity: true)
    }
}
