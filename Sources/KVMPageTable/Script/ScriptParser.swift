/// Parses operation scripts (FORMAT.md, "Scripts").
///
/// The parser works on the UTF-8 bytes of the text. Lines end at `\n`; one
/// trailing `\r` is dropped (CRLF files). `#` starts a comment anywhere on a
/// line. Tokens are separated by spaces and tabs only; any other byte
/// (other whitespace, control characters, NUL, non-ASCII) is part of a
/// token, and every keyword, option and operand is plain ASCII, so such a
/// token is an error naming it. Errors are reported for the lowest line,
/// and within a line for the leftmost token at fault.
public enum ScriptParser {
    /// Parses a whole script; the first error found (lowest line) is thrown.
    public static func parse(_ text: String, fileName: String) throws(ScriptError) -> Script {
        var configuration: ScriptConfiguration?
        var configurationLine = 0
        var statements: [Statement] = []

        var lineNumber = 0
        for rawLine in text.utf8.split(separator: Byte.newline, omittingEmptySubsequences: false) {
            lineNumber += 1
            let tokens = tokenize(rawLine)
            guard let keyword = tokens.first else { continue }
            let operands = tokens.dropFirst()

            func fail(_ message: String) -> ScriptError {
                ScriptError(fileName: fileName, line: lineNumber, message: message)
            }

            if let kind = configurationKind(keyword) {
                if configuration != nil {
                    throw fail("repeated configuration (the table is configured on line \(configurationLine))")
                }
                do throws(LineError) {
                    configuration = try parseConfiguration(kind: kind, options: operands)
                } catch {
                    throw fail(error.message)
                }
                configurationLine = lineNumber
                continue
            }

            guard let prototype = prototypes[keyword] else {
                throw fail("unknown statement \(quoted(keyword))")
            }
            guard let configuration else {
                throw fail("missing configuration: the first statement must be 'stage2 ...' or 'hyp ...' (found \(quoted(keyword)))")
            }
            if configuration.kind == .hyp && prototype.isStage2Only {
                throw fail("\(prototype.keyword) is stage-2 only (this is a hyp script)")
            }
            do throws(LineError) {
                let operation = try parseOperation(prototype, operands: operands)
                statements.append(Statement(operation: operation, line: lineNumber))
            } catch {
                throw fail(error.message)
            }
        }

        guard let configuration else {
            throw ScriptError(fileName: fileName, line: 1,
                              message: "missing configuration: the script has no statements (the first must be 'stage2 ...' or 'hyp ...')")
        }
        return Script(fileName: fileName, configuration: configuration, statements: statements)
    }
}

// MARK: - Numbers

extension ScriptParser {
    /// What a number token parses to.
    enum NumberParse: Hashable, Sendable {
        /// A valid number.
        case value(UInt64)
        /// Not a number at all (empty, sign, junk, `0x` without digits...).
        case malformed
        /// Well-formed, but the value (after the suffix) exceeds 64 bits.
        case overflow
    }

    /// Parses a number: decimal or `0x` hex (prefix and digits either case),
    /// optionally followed by `K`, `M`, `G` or `T` (either case, powers of
    /// 1024). FORMAT.md has no octal: `010` is decimal ten.
    static func parseNumber(_ token: String) -> NumberParse {
        parseNumber(bytes: token.utf8)
    }

    /// ``parseNumber(_:)`` on UTF-8 bytes.
    static func parseNumber<C: BidirectionalCollection>(bytes token: C) -> NumberParse where C.Element == UInt8 {
        var body = token[...]
        guard let last = body.last else { return .malformed }

        var shift: UInt64 = 0
        switch last | 0x20 {  // ASCII lower-case; letters only matter here
        case UInt8(ascii: "k"): shift = 10
        case UInt8(ascii: "m"): shift = 20
        case UInt8(ascii: "g"): shift = 30
        case UInt8(ascii: "t"): shift = 40
        default: break
        }
        if shift != 0 { body = body.dropLast() }

        var radix: UInt64 = 10
        if body.count >= 2, body.first == UInt8(ascii: "0"),
           body[body.index(after: body.startIndex)] | 0x20 == UInt8(ascii: "x") {
            radix = 16
            body = body.dropFirst(2)
        }
        guard !body.isEmpty else { return .malformed }

        var value: UInt64 = 0
        var overflowed = false
        for byte in body {
            guard let digit = digitValue(byte, radix: radix) else { return .malformed }
            if overflowed { continue }  // keep checking the syntax
            let (product, o1) = value.multipliedReportingOverflow(by: radix)
            let (sum, o2) = product.addingReportingOverflow(digit)
            if o1 || o2 { overflowed = true } else { value = sum }
        }
        if overflowed || value > UInt64.max >> shift { return .overflow }
        return .value(value << shift)
    }

    private static func digitValue(_ byte: UInt8, radix: UInt64) -> UInt64? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"):
            return UInt64(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f") where radix == 16:
            return UInt64(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F") where radix == 16:
            return UInt64(byte - UInt8(ascii: "A") + 10)
        default:
            return nil
        }
    }
}

// MARK: - Lines and tokens

extension ScriptParser {
    typealias Token = Substring.UTF8View

    enum Byte {
        static let newline = UInt8(ascii: "\n")
        static let carriageReturn = UInt8(ascii: "\r")
        static let hash = UInt8(ascii: "#")
        static let space = UInt8(ascii: " ")
        static let tab = UInt8(ascii: "\t")
        static let equals = UInt8(ascii: "=")
    }

    /// The tokens of one line: a trailing `\r` dropped, the comment cut off,
    /// split at runs of spaces and tabs.
    static func tokenize(_ line: Token) -> [Token] {
        var line = line
        if line.last == Byte.carriageReturn { line = line.dropLast() }
        if let hash = line.firstIndex(of: Byte.hash) { line = line[..<hash] }
        return line.split(omittingEmptySubsequences: true) { $0 == Byte.space || $0 == Byte.tab }
    }

    /// Whether a token is exactly the ASCII text `word`.
    static func equals(_ token: Token, _ word: StaticString) -> Bool {
        word.withUTF8Buffer { token.elementsEqual($0) }
    }

    /// A token quoted for a message: control and invisible characters
    /// escaped, long tokens shortened, so messages stay one readable line.
    static func quoted<C: Collection>(_ token: C) -> String where C.Element == UInt8 {
        let limit = 40
        var text = ""
        var count = 0
        for scalar in String(decoding: token, as: UTF8.self).unicodeScalars {
            if count == limit {
                text += "..."
                break
            }
            count += 1
            switch scalar {
            case "\0": text += "\\0"
            case "\t": text += "\\t"
            case "\r": text += "\\r"
            case "\\": text += "\\\\"
            case "'": text += "\\'"
            default:
                switch scalar.properties.generalCategory {
                case .control, .format, .lineSeparator, .paragraphSeparator,
                     .surrogate, .privateUse, .unassigned:
                    text += "\\u{" + String(scalar.value, radix: 16) + "}"
                case .nonspacingMark, .spacingMark, .enclosingMark:
                    // A leading combining mark would combine with the quote.
                    if count == 1 {
                        text += "\\u{" + String(scalar.value, radix: 16) + "}"
                    } else {
                        text.unicodeScalars.append(scalar)
                    }
                default:
                    text.unicodeScalars.append(scalar)
                }
            }
        }
        return "'" + text + "'"
    }
}

// MARK: - Configuration

extension ScriptParser {
    /// An error on the current line; the caller adds file and line.
    struct LineError: Error {
        var message: String
        init(_ message: String) { self.message = message }
    }

    static func configurationKind(_ token: Token) -> TableKind? {
        if equals(token, "stage2") { return .stage2 }
        if equals(token, "hyp") { return .hyp }
        return nil
    }

    private enum ConfigurationOption: CaseIterable {
        case granule, iaBits, vaBits, fwb, lpa2, tlbiRange

        var name: String {
            switch self {
            case .granule: "granule"
            case .iaBits: "ia_bits"
            case .vaBits: "va_bits"
            case .fwb: "fwb"
            case .lpa2: "lpa2"
            case .tlbiRange: "tlbi_range"
            }
        }

        var takesValue: Bool {
            switch self {
            case .granule, .iaBits, .vaBits: true
            case .fwb, .lpa2, .tlbiRange: false
            }
        }

        init?(_ key: Token) {
            guard let option = Self.allCases.first(where: { $0.name.utf8.elementsEqual(key) }) else { return nil }
            self = option
        }
    }

    /// `stage2 granule=G ia_bits=N [fwb] [lpa2] [tlbi_range]` or
    /// `hyp granule=G va_bits=N [lpa2]`, options in any order, each once.
    static func parseConfiguration<S: Sequence>(kind: TableKind, options: S) throws(LineError) -> ScriptConfiguration
    where S.Element == Token {
        let kindName = kind.rawValue
        let bitsOption: ConfigurationOption = kind == .stage2 ? .iaBits : .vaBits
        var seen: Set<String> = []
        var granule: Granule?
        var bits: Int?
        var fwb = false, lpa2 = false, tlbiRange = false

        for token in options {
            let equalsSign = token.firstIndex(of: Byte.equals)
            let key = equalsSign.map { token[..<$0] } ?? token
            let value = equalsSign.map { token[token.index(after: $0)...] }

            guard let option = ConfigurationOption(key) else {
                throw LineError("\(kindName): unknown option \(quoted(token))")
            }
            switch (kind, option) {
            case (.hyp, .iaBits):
                throw LineError("hyp: ia_bits is for stage2 (hyp takes va_bits)")
            case (.stage2, .vaBits):
                throw LineError("stage2: va_bits is for hyp (stage2 takes ia_bits)")
            case (.hyp, .fwb), (.hyp, .tlbiRange):
                throw LineError("hyp: \(option.name) is stage-2 only")
            default:
                break
            }
            guard seen.insert(option.name).inserted else {
                throw LineError("\(kindName): repeated option '\(option.name)'")
            }
            if !option.takesValue {
                if value != nil { throw LineError("\(kindName): option '\(option.name)' takes no value (found \(quoted(token)))") }
            } else if value == nil || value!.isEmpty {
                let example = option == .granule ? "granule=4K, 16K or 64K" : "\(option.name)=N"
                throw LineError("\(kindName): missing value for \(option.name) (\(example))")
            }

            switch option {
            case .granule:
                granule = try parseGranule(value!)
            case .iaBits, .vaBits:
                bits = try parseBits(value!, name: option.name)
            case .fwb: fwb = true
            case .lpa2: lpa2 = true
            case .tlbiRange: tlbiRange = true
            }
        }

        guard let granule else {
            throw LineError("\(kindName): missing granule= (4K, 16K or 64K)")
        }
        guard let bits else {
            throw LineError("\(kindName): missing \(bitsOption.name)=")
        }
        let configuration = ScriptConfiguration(kind: kind, granule: granule, inputBits: bits,
                                                fwb: fwb, lpa2: lpa2, tlbiRange: tlbiRange)
        do throws(TableGeometry.Refusal) {
            _ = try TableGeometry(configuration)
        } catch {
            throw LineError(error.message)
        }
        return configuration
    }

    private static func parseGranule(_ value: Token) throws(LineError) -> Granule {
        // Only ASCII reaches Granule(name:): String comparison is by
        // canonical equivalence, and U+212A KELVIN SIGN is a `K`.
        guard value.allSatisfy({ $0 < 0x80 }),
              let granule = Granule(name: String(decoding: value, as: UTF8.self)) else {
            throw LineError("bad granule \(quoted(value)) (expected 4K, 16K or 64K)")
        }
        return granule
    }

    private static func parseBits(_ value: Token, name: String) throws(LineError) -> Int {
        var bits = 0
        for byte in value {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else {
                throw LineError("bad \(name) \(quoted(value)) (expected a decimal number)")
            }
            // Anything this large is refused anyway; saturate instead of overflowing.
            bits = min(bits * 10 + Int(byte - UInt8(ascii: "0")), 1_000_000)
        }
        if bits >= 1_000_000 {
            throw LineError("\(name) \(quoted(value)) is out of range")
        }
        return bits
    }
}

// MARK: - Operations

extension ScriptParser {
    /// One operation of each kind, zero operands: the keyword table and
    /// `isStage2Only` come from `Operation` itself.
    static let allOperationPrototypes: [Operation] = [
        .map(addr: 0, size: 0, phys: 0, prot: []),
        .unmap(addr: 0, size: 0),
        .ioremap(addr: 0, size: 0, phys: 0, readOnly: false),
        .ioremapBlock(addr: 0, size: 0, phys: 0, readOnly: false),
        .wrprotect(addr: 0, size: 0),
        .mkyoung(addr: 0),
        .testClearYoung(addr: 0, size: 0, mkold: false),
        .relaxPerms(addr: 0, prot: []),
        .flush(addr: 0, size: 0),
        .split(addr: 0, size: 0),
        .getLeaf(addr: 0),
        .limitPages(0),
        .dump,
        .summary,
        .ptdump,
    ]

    private struct Keywords {
        let table: [[UInt8]: Operation]
        subscript(_ token: Token) -> Operation? { table[Array(token)] }
    }

    private static let prototypes = Keywords(table: Dictionary(
        uniqueKeysWithValues: allOperationPrototypes.map { (Array($0.keyword.utf8), $0) }))

    /// Reads a statement's operands left to right.
    private struct Operands {
        let keyword: String
        var rest: [Token]

        mutating func next(_ name: String) throws(LineError) -> Token {
            guard !rest.isEmpty else { throw LineError("\(keyword): missing \(name)") }
            return rest.removeFirst()
        }

        mutating func number(_ name: String) throws(LineError) -> UInt64 {
            let token = try next(name)
            switch ScriptParser.parseNumber(bytes: token) {
            case .value(let v):
                return v
            case .malformed:
                throw LineError("bad number \(quoted(token)) for \(name)")
            case .overflow:
                throw LineError("number \(quoted(token)) for \(name) overflows 64 bits")
            }
        }

        mutating func prot() throws(LineError) -> Prot {
            let token = try next("PROT")
            let text = String(decoding: token, as: UTF8.self)
            for scalar in text.unicodeScalars where !"rwxdn".unicodeScalars.contains(scalar) {
                throw LineError("unknown PROT letter \(quoted(String(scalar).utf8)) in \(quoted(token))")
            }
            guard let prot = Prot(letters: Substring(text)) else {
                throw LineError("bad PROT \(quoted(token))")
            }
            return prot
        }

        /// An optional trailing word (`ro`, `mkold`).
        mutating func flag(_ word: String) throws(LineError) -> Bool {
            guard let token = rest.first else { return false }
            guard token.elementsEqual(word.utf8) else {
                throw LineError("\(keyword): expected '\(word)' or nothing, found \(quoted(token))")
            }
            rest.removeFirst()
            return true
        }

        func finish() throws(LineError) {
            if let extra = rest.first {
                throw LineError("\(keyword): unexpected operand \(quoted(extra))")
            }
        }
    }

    static func parseOperation<S: Sequence>(_ prototype: Operation, operands: S) throws(LineError) -> Operation
    where S.Element == Token {
        var r = Operands(keyword: prototype.keyword, rest: Array(operands))
        let operation: Operation
        switch prototype {
        case .map:
            operation = .map(addr: try r.number("ADDR"), size: try r.number("SIZE"),
                             phys: try r.number("PHYS"), prot: try r.prot())
        case .unmap:
            operation = .unmap(addr: try r.number("ADDR"), size: try r.number("SIZE"))
        case .ioremap:
            operation = .ioremap(addr: try r.number("ADDR"), size: try r.number("SIZE"),
                                 phys: try r.number("PHYS"), readOnly: try r.flag("ro"))
        case .ioremapBlock:
            operation = .ioremapBlock(addr: try r.number("ADDR"), size: try r.number("SIZE"),
                                      phys: try r.number("PHYS"), readOnly: try r.flag("ro"))
        case .wrprotect:
            operation = .wrprotect(addr: try r.number("ADDR"), size: try r.number("SIZE"))
        case .mkyoung:
            operation = .mkyoung(addr: try r.number("ADDR"))
        case .testClearYoung:
            operation = .testClearYoung(addr: try r.number("ADDR"), size: try r.number("SIZE"),
                                        mkold: try r.flag("mkold"))
        case .relaxPerms:
            operation = .relaxPerms(addr: try r.number("ADDR"), prot: try r.prot())
        case .flush:
            operation = .flush(addr: try r.number("ADDR"), size: try r.number("SIZE"))
        case .split:
            operation = .split(addr: try r.number("ADDR"), size: try r.number("SIZE"))
        case .getLeaf:
            operation = .getLeaf(addr: try r.number("ADDR"))
        case .limitPages:
            operation = .limitPages(try r.number("N"))
        case .dump:
            operation = .dump
        case .summary:
            operation = .summary
        case .ptdump:
            operation = .ptdump
        }
        try r.finish()
        return operation
    }
}
