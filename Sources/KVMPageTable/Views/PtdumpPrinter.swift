import CKVMPageTable

/// Streams the text a read of the kernel's debugfs `stage2_page_tables` gives.
///
/// The kernel walks the whole IPA space `[0, 2^ia_bits)` with a LEAF-only
/// walker and hands every visited entry to the arm64 ptdump parser
/// (`note_page()`). The parser keeps one open *run*: a first address, a level
/// and the entry's masked attribute bits. A visit that differs from the open
/// run in level or in those bits closes the run (one text line) and opens a
/// new one; an equal visit just extends it. The very first visit prints the
/// marker line `---[ Guest IPA ]---`. Nothing flushes the parser after the
/// walk, so the run that reaches the end of the IPA space is never printed.
///
/// Bits compared (`PtdumpPrinter.comparedBits`): valid, type, S2AP R and W,
/// XN[1:0] and AF. Memory type, shareability, output address and software
/// bits are ignored, so neighbours that differ only there share a line.
///
/// Each closed run prints as
///
///     0x<start:016x>-0x<end:016x>   <size:%9lu><unit> <level>[flags]\n
///
/// where the size is in the largest of K, M, G, T, P, E that divides it and
/// the flags column is printed only when the run's masked bits are non-zero
/// (see `appendFlags`), trailing spaces included.
///
/// The text is produced whole, as the kernel prints it once the parser state
/// is reset before every walk (v6.19 itself garbled text longer than the
/// seq_file's first buffer; see `seqFileBufferSize`).
///
/// Performance: `note` does a mask, two compares and returns unless a run
/// closes; only then is a line formatted, straight into a byte buffer.
public struct PtdumpPrinter {
    /// The IPA size the walk covers: `[0, 2^inputBits)`.
    public let inputBits: Int
    /// The table's start level (names the levels that can appear).
    public let startLevel: Level
    /// The granule: the host `PAGE_SIZE`, which sizes the seq_file buffer.
    public let granule: Granule

    /// The text so far as ASCII bytes (what `text` decodes).
    public private(set) var bytes: [UInt8] = []
    /// Lines printed after the marker line (closed runs).
    public private(set) var lineCount: Int = 0

    /// Whether the first visit (which prints the marker) has happened: the
    /// kernel's `st->level == -1` test.
    private var started = false
    /// The open run.
    private var runStart: UInt64 = 0
    private var runLevel: Level = Level(0)
    private var runBits: UInt64 = 0

    /// The name of the one address marker stage 2 uses.
    public static let markerName: StaticString = "Guest IPA"

    /// The descriptor bits `note` compares: the union of the masks of the
    /// kernel's `stage2_pte_bits[]` table (valid, S2AP R/W, XN, AF and the
    /// two-bit type field the `BLK` column tests).
    public static let comparedBits: UInt64 =
        KVMPT_PTE_VALID | KVMPT_PTE_TYPE | KVMPT_S2_S2AP_R | KVMPT_S2_S2AP_W
        | KVMPT_S2_XN | KVMPT_S2_AF

    /// Creates a printer for one walk. `inputBits` must be below 64 (the
    /// kernel's stage 2 goes up to 52).
    public init(inputBits: Int, startLevel: Level, granule: Granule) {
        precondition(inputBits > 0 && inputBits < 64, "inputBits must be in 1...63")
        self.inputBits = inputBits
        self.startLevel = startLevel
        self.granule = granule
        // The first seq_file buffer is one page; most dumps fit in it.
        bytes.reserveCapacity(Int(granule.pageSize))
    }

    /// The first address past the walk: `2^inputBits`.
    @inlinable public var inputLimit: UInt64 { 1 << UInt64(inputBits) }

    /// Called for every LEAF visit of a kernel-style walk over
    /// `[0, 2^inputBits)` with only the LEAF flag: `address` is the walk's
    /// current address (the entry's first input address), `level` the level
    /// of the entry, `entry` the raw descriptor (0 for empty entries).
    /// Tables are never passed. Addresses must increase from call to call
    /// and stay below `inputLimit`.
    public mutating func note(address: UInt64, level: Level, entry: UInt64) {
        // note_page() masks only for levels >= 0 (it indexes its level table).
        let bits = level.rawValue >= 0 ? entry & Self.comparedBits : 0
        if started && bits == runBits && level == runLevel { return }
        noteChange(address: address, level: level, bits: bits)
    }

    /// The slow path of `note`: the first visit, or a visit that closes the
    /// open run.
    @inline(never)
    private mutating func noteChange(address: UInt64, level: Level, bits: UInt64) {
        precondition(address < inputLimit, "ptdump visit past the end of the IPA space")
        if started {
            precondition(address > runStart, "ptdump visits must be in increasing address order")
            appendLine(end: address)
            lineCount += 1
        } else {
            started = true
            appendASCII("---[ ")
            appendASCII(Self.markerName)
            appendASCII(" ]---\n")
        }
        runStart = address
        runLevel = level
        runBits = bits
    }

    /// The text so far: empty before the first visit; then the marker line
    /// `---[ Guest IPA ]---` and one line per finished run, each ending in
    /// "\n". The run still open is never part of it, as in the kernel.
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    /// The size of the seq_file buffer that finally held the text: one
    /// granule page, doubled until the text fits (`seq_printf` needs the text
    /// to stay strictly shorter than the buffer).
    public var seqFileBufferSize: Int {
        var size = Int(granule.pageSize)
        while bytes.count >= size { size <<= 1 }
        return size
    }

    /// How many times `seq_read` would have overflowed its buffer and run the
    /// walk again (the v6.19 garbling case when non-zero).
    public var seqFileRetries: Int {
        (seqFileBufferSize / Int(granule.pageSize)).trailingZeroBitCount
    }

    // MARK: - Formatting

    /// Appends the line of the open run, which ends at `end`.
    private mutating func appendLine(end: UInt64) {
        appendHex16(runStart)
        bytes.append(UInt8(ascii: "-"))
        appendHex16(end)
        appendASCII("   ")
        let (count, unit) = Self.scaledSize(end &- runStart)
        appendDecimal(count, width: 9)
        bytes.append(unit)
        bytes.append(UInt8(ascii: " "))
        appendLevelName(runLevel)
        if runBits != 0 { Self.appendFlags(runBits, to: &bytes) }
        bytes.append(UInt8(ascii: "\n"))
    }

    /// The unit letters, smallest first.
    private static let units: [UInt8] = Array("KMGTPE".utf8)

    /// A byte count as note_page() scales it: in KiB, then divided by 1024
    /// while the count is a multiple of 1024 and a larger unit is left.
    /// (A count below 1 KiB scales to 0 and runs through to `E`, as there.)
    static func scaledSize(_ byteCount: UInt64) -> (count: UInt64, unit: UInt8) {
        var count = byteCount >> 10
        var unit = 0
        while count & 1023 == 0 && unit + 1 < units.count {
            count >>= 10
            unit += 1
        }
        return (count, units[unit])
    }

    /// Appends the flags column of a run whose masked bits are `bits`, as
    /// dump_prot() prints `stage2_pte_bits[]`: each column is a space and a
    /// fixed-width word.
    static func appendFlags(_ bits: UInt64, to out: inout [UInt8]) {
        func put(_ s: StaticString) {
            s.withUTF8Buffer { out.append(contentsOf: $0) }
        }
        put(bits & KVMPT_PTE_VALID != 0 ? "  " : " F")
        put(bits & KVMPT_S2_S2AP_R != 0 ? " R" : "  ")
        put(bits & KVMPT_S2_S2AP_W != 0 ? " W" : "  ")
        // The four XN rows share one mask; exactly one of them matches.
        switch (bits & KVMPT_S2_XN) >> UInt64(KVMPT_S2_XN.trailingZeroBitCount) {
        case 0b00: put(" px ux ")
        case 0b01: put(" PXNux ")
        case 0b10: put(" PXNUXN")
        default: put(" px UXN")
        }
        put(bits & KVMPT_S2_AF != 0 ? " AF" : "   ")
        // PMD_TYPE_MASK / PMD_TYPE_SECT: valid with the type bit clear.
        put(bits & (KVMPT_PTE_VALID | KVMPT_PTE_TYPE) == KVMPT_PTE_VALID ? " BLK" : "    ")
    }

    private mutating func appendASCII(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// `0x` and 16 lower-case hex digits (`0x%016lx`).
    private mutating func appendHex16(_ value: UInt64) {
        let at = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: 18))
        bytes.withUnsafeMutableBufferPointer { buffer in
            _ = Hex.write16(value, into: buffer.baseAddress! + at, prefixed: true)
        }
    }

    /// Unsigned decimal, right-aligned in `width` columns, never truncated
    /// (`%9lu`).
    private mutating func appendDecimal(_ value: UInt64, width: Int) {
        var n = 1
        var rest = value / 10
        while rest != 0 { n += 1; rest /= 10 }
        if n < width { bytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: width - n)) }
        var i = bytes.count + n
        bytes.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: n))
        var v = value
        repeat {
            i -= 1
            bytes[i] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v % 10)
            v /= 10
        } while v != 0
    }

    /// The level's name: the kernel names stage-2 levels with `%u`.
    private mutating func appendLevelName(_ level: Level) {
        if level.rawValue < 0 {
            // Not reachable in the kernel (it refuses start levels below 0);
            // printed signed rather than wrapped.
            bytes.append(UInt8(ascii: "-"))
            appendDecimal(UInt64(-Int(level.rawValue)), width: 0)
        } else {
            appendDecimal(UInt64(level.rawValue), width: 0)
        }
    }
}

/// Feeds every leaf visit of a whole-table walk to a ``PtdumpPrinter``.
struct PtdumpVisitor: Visitor {
    var printer: PtdumpPrinter
    var flags: WalkFlags { .leaf }
    mutating func visit(_ ctx: inout VisitContext, _ visit: Visit) -> Int32 {
        printer.note(address: ctx.addr, level: ctx.level, entry: ctx.old)
        return 0
    }
}
