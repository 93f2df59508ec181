// The differential harness of the model-based property tests: a seeded
// generator of operation sequences, a runner that replays a sequence on the
// library and on ``ReferenceModel`` step by step, and a delta-debugging
// shrinker that prints a failing case as a replayable `.s2` script.
//
// Like PropertyModel.swift, it uses only the public API (FuzzTesting links it).
import KVMPageTable

/// SplitMix64: small, fast, and the same sequence everywhere for a seed.
///
/// Made from bytes instead (the fuzzer's input), each draw takes the next
/// two bytes (zero past the end) and repeats them across the word, so that
/// both `next() % n` and `chance(p)` see them: a mutation of the input
/// changes one choice of the generator.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    var bytes: [UInt8] = []
    var position = 0
    var fromBytes = false
    init(seed: UInt64) { state = seed }
    init(bytes: [UInt8]) {
        state = 0
        self.bytes = bytes
        fromBytes = true
    }
    /// Whether a byte-fed generator has used up its input.
    var exhausted: Bool { fromBytes && position >= bytes.count }
    mutating func next() -> UInt64 {
        if fromBytes {
            var v: UInt64 = 0
            for _ in 0..<2 {
                v = v << 8 | UInt64(position < bytes.count ? bytes[position] : 0)
                position += 1
            }
            return v << 48 | v << 32 | v << 16 | v
        }
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

extension ScriptConfiguration {
    /// The script's first line.
    var scriptLine: String {
        switch kind {
        case .stage2:
            return "stage2 granule=\(granule) ia_bits=\(inputBits)" + (fwb ? " fwb" : "") + (lpa2 ? " lpa2" : "")
                + (tlbiRange ? " tlbi_range" : "")
        case .hyp:
            return "hyp granule=\(granule) va_bits=\(inputBits)" + (lpa2 ? " lpa2" : "")
        }
    }
}

/// A replayable script for a configuration and operations.
func propertyScript(_ configuration: ScriptConfiguration, _ ops: [Operation]) -> String {
    ([configuration.scriptLine] + ops.map(\.normalized)).joined(separator: "\n") + "\n"
}

/// The configurations the property tests cover: every granule, several
/// input sizes (concatenated roots, every start level), FWB, TLBI range,
/// LPA2, and hyp tables.
enum PropertyConfigurations {
    static let all: [ScriptConfiguration] = [
        .init(kind: .stage2, granule: .size4K, inputBits: 32),
        .init(kind: .stage2, granule: .size4K, inputBits: 36, fwb: true),
        .init(kind: .stage2, granule: .size4K, inputBits: 39),
        .init(kind: .stage2, granule: .size4K, inputBits: 40),
        .init(kind: .stage2, granule: .size4K, inputBits: 40, fwb: true, tlbiRange: true),
        .init(kind: .stage2, granule: .size4K, inputBits: 42, tlbiRange: true),
        .init(kind: .stage2, granule: .size4K, inputBits: 44),
        .init(kind: .stage2, granule: .size4K, inputBits: 48, fwb: true),
        .init(kind: .stage2, granule: .size4K, inputBits: 52, lpa2: true),
        .init(kind: .stage2, granule: .size4K, inputBits: 40, fwb: true, lpa2: true),
        .init(kind: .stage2, granule: .size16K, inputBits: 36, fwb: true, tlbiRange: true),
        .init(kind: .stage2, granule: .size16K, inputBits: 40),
        .init(kind: .stage2, granule: .size16K, inputBits: 47),
        .init(kind: .stage2, granule: .size16K, inputBits: 48, tlbiRange: true),
        .init(kind: .stage2, granule: .size16K, inputBits: 52, lpa2: true),
        .init(kind: .stage2, granule: .size64K, inputBits: 40),
        .init(kind: .stage2, granule: .size64K, inputBits: 42, fwb: true, tlbiRange: true),
        .init(kind: .stage2, granule: .size64K, inputBits: 48),
        .init(kind: .stage2, granule: .size64K, inputBits: 52),
        .init(kind: .hyp, granule: .size4K, inputBits: 39),
        .init(kind: .hyp, granule: .size4K, inputBits: 48),
        .init(kind: .hyp, granule: .size4K, inputBits: 52, lpa2: true),
        .init(kind: .hyp, granule: .size16K, inputBits: 48),
        .init(kind: .hyp, granule: .size64K, inputBits: 42),
        .init(kind: .hyp, granule: .size64K, inputBits: 52),
    ]
}

/// Random operation sequences that interact: addresses cluster in a few
/// regions (one at the top of the input range, one across a root-page
/// boundary when the root is concatenated), sizes are pages, blocks, blocks
/// give or take pages, or odd; output addresses are mostly block-aligned.
struct OperationGenerator {
    let configuration: ScriptConfiguration
    let geometry: TableGeometry
    let page: UInt64
    let block: UInt64
    let bigBlock: UInt64?
    let regions: [UInt64]
    let paBases: [UInt64]
    var rng: SplitMix64
    /// Ranges used before (addr, size, phys): reused so that operations
    /// hit each other's mappings exactly (identical and permission-only
    /// remaps, unmapping what was mapped, splitting what was mapped).
    var history: [(UInt64, UInt64, UInt64)] = []

    init(_ configuration: ScriptConfiguration, seed: UInt64) throws {
        try self.init(configuration, rng: SplitMix64(seed: seed))
    }

    init(_ configuration: ScriptConfiguration, rng source: SplitMix64) throws {
        self.configuration = configuration
        geometry = try TableGeometry(configuration)
        rng = source
        let g = geometry.granule
        page = g.pageSize
        block = g.size(at: Level(2))
        bigBlock = g == .size4K ? g.size(at: Level(1)) : nil
        let limit = geometry.inputLimit
        let span = max(block * 8, bigBlock ?? 0)
        var regions: [UInt64] = []
        let slots = (limit - span) / span
        regions.append(UInt64.random(in: 0...min(slots, 64), using: &rng) * span)
        regions.append(limit - span)
        if geometry.rootPages > 1 {
            let rootSpan = g.size(at: geometry.startLevel) * UInt64(g.entriesPerTable)
            regions.append(rootSpan - span / 2)
        }
        self.regions = regions
        let outBits = geometry.format.outputAddressBits
        let align = bigBlock ?? block
        var bases: [UInt64] = [0, align, 2 * align, 0x80_0000_0000 & ~(align - 1)]
        bases.append((UInt64(1) << UInt64(outBits - 1)) & ~(align - 1))
        bases.append(((UInt64(1) << UInt64(outBits)) - 4 * align) & ~(align - 1))
        paBases = bases
    }

    mutating func chance(_ p: Double) -> Bool { Double(rng.next() >> 11) / Double(1 << 53) < p }
    mutating func pick<T>(_ xs: [T]) -> T { xs[Int(rng.next() % UInt64(xs.count))] }
    mutating func below(_ n: UInt64) -> UInt64 { n == 0 ? 0 : rng.next() % n }

    mutating func address() -> UInt64 {
        var a = pick(regions)
        if let big = bigBlock, chance(0.08) { return a + (chance(0.5) ? 0 : big) }
        a += below(4) * block
        switch below(6) {
        case 0, 1: break
        case 2: a += below(16) * page
        case 3: a += block - page * (1 + below(2))
        case 4: a += below(block / page) * page
        default: a += below(3) * page
        }
        if chance(0.03) { a += below(page) }  // unaligned: rounded down by the walk
        return a
    }

    mutating func size(pagesOnly: Bool = false) -> UInt64 {
        if pagesOnly { return (1 + below(chance(0.8) ? 8 : 64)) * page - (chance(0.05) ? below(page) : 0) }
        switch below(12) {
        case 0, 1, 2, 3: return (1 + below(16)) * page
        case 4, 5, 6: return block * (1 + below(2))
        case 7: return block + page * (1 + below(4))
        case 8: return block - page * (1 + below(4))
        case 9: return chance(0.5) ? (bigBlock ?? block * 3) : below(3 * page)
        case 10: return chance(0.5) ? 0 : 1 + below(page)
        default: return page * (1 + below(block / page))
        }
    }

    mutating func physical(for addr: UInt64, size: UInt64) -> UInt64 {
        let align = bigBlock ?? block
        var pa = pick(paBases) + (addr & (align - 1))
        let pages = size / page
        // Misalign sometimes, but never into a flood of pages.
        if chance(0.25), pages <= 2048 { pa = pa &+ (1 + below(8)) * page }
        if chance(0.03) { pa += below(page) }
        let outLimit = UInt64(1) << UInt64(geometry.format.outputAddressBits)
        if pa >= outLimit || pa &+ size > outLimit { pa = addr & (align - 1) }
        return pa
    }

    mutating func prot() -> Prot {
        let letters = configuration.kind == .hyp
            ? ["r", "rw", "rx", "rd", "rwd", "r", "rw", "wx", "rwx", "rn"]
            : ["r", "rw", "rx", "rwx", "rw", "rd", "rwd", "rn", "rwn", "w", "x", "rxd", "dn"]
        return Prot(letters: Substring(pick(letters)))!
    }

    mutating func limit() -> Operation {
        switch below(5) {
        case 0, 1, 2: return .limitPages(below(7))
        case 3: return .limitPages(8 + below(40))
        default: return .limitPages(1_000_000)
        }
    }

    /// An address and size: fresh, or one used before (possibly a sub-range).
    mutating func range(pagesOnly: Bool = false) -> (UInt64, UInt64, UInt64?) {
        if !history.isEmpty, chance(0.4) {
            var (a, s, p) = pick(history)
            if chance(0.25), s > page {
                let off = below(s / page) * page
                a += off
                p &+= off
                s = max(page, (s - off) / (1 + below(3)))
            }
            if pagesOnly { s = min(s, 64 * page) }
            return (a, s, p)
        }
        let a = address(), s = size(pagesOnly: pagesOnly)
        return (a, s, nil)
    }

    mutating func mapping(pagesOnly: Bool = false) -> (UInt64, UInt64, UInt64) {
        let (a, s, reused) = range(pagesOnly: pagesOnly)
        let p = (reused != nil && chance(0.7)) ? reused! : physical(for: a, size: s)
        history.append((a, s, p))
        if history.count > 8 { history.removeFirst() }
        return (a, s, p)
    }

    mutating func operation() -> Operation {
        if configuration.kind == .hyp {
            switch below(20) {
            case 0...9:
                let (a, s, p) = mapping()
                return .map(addr: a, size: s, phys: p, prot: prot())
            case 10...15:
                let (a, s, _) = range()
                return .unmap(addr: a, size: s)
            case 16: return .getLeaf(addr: range().0)
            default: return limit()
            }
        }
        switch below(100) {
        case 0..<30:
            let (a, s, p) = mapping()
            return .map(addr: a, size: s, phys: p, prot: prot())
        case 30..<45:
            let (a, s, _) = range()
            return .unmap(addr: a, size: s)
        case 45..<50:
            let (a, s, p) = mapping(pagesOnly: true)
            return .ioremap(addr: a, size: s, phys: p, readOnly: chance(0.3))
        case 50..<57:
            let (a, s, p) = mapping()
            return .ioremapBlock(addr: a, size: s, phys: p, readOnly: chance(0.3))
        case 57..<63:
            let (a, s, _) = range()
            return .wrprotect(addr: a, size: s)
        case 63..<70:
            return .relaxPerms(addr: range().0, prot: pick([Prot.read, .readWrite, [.read, .execute], .execute, .write, [.read, .write, .execute]]))
        case 70..<78:
            let (a, s, _) = range()
            return .split(addr: a, size: s)
        case 78..<82: return .mkyoung(addr: range().0)
        case 82..<86:
            let (a, s, _) = range()
            return .testClearYoung(addr: a, size: s, mkold: chance(0.6))
        case 86..<88:
            let (a, s, _) = range()
            return .flush(addr: a, size: s)
        case 88..<90: return .getLeaf(addr: range().0)
        default: return limit()
        }
    }

    mutating func operations(count: Int) -> [Operation] {
        (0..<count).map { _ in operation() }
    }
}

/// A disagreement between the library and the model, or a broken invariant.
struct PropertyFailure: Error, CustomStringConvertible {
    /// The 0-based step (operations, then teardown unmaps).
    var step: Int
    var message: String
    /// Everything that ran up to the failure, teardown included.
    var executed: [Operation]
    var description: String { "step \(step + 1): \(message)" }
}

/// Replays operations on the library and on the model side by side.
enum DifferentialRunner {
    /// Runs `ops`, then unmaps everything, comparing after every step.
    ///
    /// - `thorough`: compare the whole canonical dump after every step
    ///   (otherwise only while the table is small).
    /// - `tolerateHypWarn`: accept the refcount excess the kernel's hyp map
    ///   WARN path leaves (only once the model has taken that path).
    static func run(_ configuration: ScriptConfiguration, _ ops: [Operation], seed: UInt64,
                    thorough: Bool = false, teardown: Bool = true) -> PropertyFailure? {
        let model: ReferenceModel
        let runner: ScriptRunner
        do {
            model = try ReferenceModel(configuration)
            runner = try ScriptRunner(script: Script(fileName: "property.s2", configuration: configuration, statements: []))
        } catch {
            return PropertyFailure(step: 0, message: "configuration refused: \(error)", executed: [])
        }
        var rng = SplitMix64(seed: seed ^ 0x5eed)
        var executed: [Operation] = []
        func step(_ op: Operation) -> PropertyFailure? {
            executed.append(op)
            let line = runner.execute(op)
            if let expected = model.perform(op) {
                let actual = resultField(line)
                if actual != expected {
                    return PropertyFailure(step: executed.count - 1,
                                           message: "\(op.normalized): library says \(actual), model says \(expected)",
                                           executed: executed)
                }
            }
            if let m = compare(runner.table.pageTable, model, op, &rng, thorough: thorough) {
                return PropertyFailure(step: executed.count - 1, message: "after \(op.normalized): \(m)", executed: executed)
            }
            return nil
        }
        for op in ops {
            if let f = step(op) { return f }
        }
        guard teardown else { return nil }
        let table = runner.table.pageTable
        if configuration.kind == .stage2 {
            if let f = step(.unmap(addr: 0, size: table.geometry.inputLimit)) { return f }
        } else {
            // hyp unmap stops at the first hole: unmap each run of
            // contiguous leaves with one call.
            var runs: [(UInt64, UInt64)] = []
            for leaf in model.leaves() {
                if let last = runs.last, last.0 &+ last.1 == leaf.addr {
                    runs[runs.count - 1].1 &+= leaf.size
                } else {
                    runs.append((leaf.addr, leaf.size))
                }
            }
            for (addr, size) in runs {
                if let f = step(.unmap(addr: addr, size: size)) { return f }
            }
        }
        let arena = table.arena
        let root = table.geometry.rootPages
        if configuration.kind == .stage2 || (model.tablePages == 0 && model.hypWarnings == 0) {
            var problems: [String] = []
            if arena.livePages != root { problems.append("\(arena.livePages) pages live, expected only the \(root) root page(s)") }
            if arena.freedCount != arena.allocatedCount - root {
                problems.append("allocated \(arena.allocatedCount), freed \(arena.freedCount)")
            }
            let dump = table.walker.canonicalDumpText()
            if !dump.isEmpty { problems.append("entries left:\n\(dump.prefix(400))") }
            if !problems.isEmpty {
                return PropertyFailure(step: executed.count - 1,
                                       message: "unmapping everything did not free every page: " + problems.joined(separator: "; "),
                                       executed: executed)
            }
        }
        return nil
    }

    /// The result field of a transcript line (`… = RESULT | …`).
    static func resultField(_ line: String) -> String {
        let u = Array(line.utf8)
        func find(_ pattern: String, from: Int) -> Int? {
            let p = Array(pattern.utf8)
            var i = from
            while i + p.count <= u.count {
                if Array(u[i..<(i + p.count)]) == p { return i }
                i += 1
            }
            return nil
        }
        guard let eq = find(" = ", from: 0) else { return line }
        let end = find(" |", from: eq + 3) ?? u.count
        return String(decoding: u[(eq + 3)..<end], as: UTF8.self)
    }

    static func operands(_ op: Operation) -> [UInt64] {
        switch op {
        case let .map(a, s, _, _), let .unmap(a, s), let .ioremap(a, s, _, _), let .ioremapBlock(a, s, _, _),
             let .wrprotect(a, s), let .testClearYoung(a, s, _), let .flush(a, s), let .split(a, s):
            return [a, a &+ s &- 1, a &+ s, a &- 1]
        case let .mkyoung(a), let .relaxPerms(a, _), let .getLeaf(a): return [a]
        default: return []
        }
    }

    static func compare(_ table: any PageTable, _ model: ReferenceModel, _ op: Operation,
                        _ rng: inout SplitMix64, thorough: Bool) -> String? {
        let violations = table.invariantViolations(limit: 4).filter {
            !($0.isKnownKernelOddity && model.hypWarnings > 0)
        }
        if !violations.isEmpty {
            return "invariant broken: " + violations.map(\.description).joined(separator: "; ")
        }
        let root = table.geometry.rootPages
        if table.arena.livePages != root + model.tablePages {
            return "library has \(table.arena.livePages - root) table pages besides the root, model \(model.tablePages)"
        }
        if table.arena.budget != model.budget {
            return "page budget: library \(String(describing: table.arena.budget)), model \(String(describing: model.budget))"
        }
        // Sampled translation: the operation's edges, random addresses
        // around them, and leaves of the model.
        let limit = table.geometry.inputLimit
        var samples = operands(op).filter { $0 < limit }
        for a in operands(op) where a < limit {
            samples.append(a &+ rng.next() % (table.geometry.granule.size(at: Level(2)) * 2))
        }
        for _ in 0..<6 {
            guard let l = model.randomLeaf(&rng) else { break }
            samples.append(l.addr)
            samples.append(l.addr &+ l.size &- 1)
            samples.append(l.addr &+ rng.next() % l.size)
        }
        samples.append(rng.next() % limit)
        for a in samples where a < limit {
            let expected = model.getLeaf(a)
            do throws(KernelError) {
                let (level, d) = try table.leaf(at: a)
                if expected.code != 0 || level != expected.level || d.rawValue != expected.pte {
                    return "translation of \(Hex.padded(a)): library \(level) \(Hex.padded(d.rawValue)), model "
                        + (expected.code != 0 ? "\(KernelError(code: expected.code)!)" : "\(expected.level) \(Hex.padded(expected.pte))")
                }
            } catch {
                if error.code != expected.code {
                    return "translation of \(Hex.padded(a)): library \(error), model \(expected.level) \(Hex.padded(expected.pte))"
                }
            }
        }
        if thorough || model.entryCount(limit: 1200) < 1200 {
            let actual = table.walker.canonicalDumpText()
            let expected = model.canonicalDump()
            if actual != expected {
                let a = actual.split(separator: "\n"), e = expected.split(separator: "\n")
                let i = (0..<min(a.count, e.count)).first { a[$0] != e[$0] } ?? min(a.count, e.count)
                return "canonical dump differs at line \(i + 1) (library \(a.count) lines, model \(e.count)): library "
                    + (i < a.count ? String(a[i]) : "<end>") + ", model " + (i < e.count ? String(e[i]) : "<end>")
            }
        }
        return nil
    }
}

/// Delta debugging (ddmin) over a statement list, then one-by-one removal.
enum Shrinker {
    static func shrink<T>(_ input: [T], maxTries: Int = 600, fails: ([T]) -> Bool) -> [T] {
        var current = input
        var tries = 0
        var n = 2
        while current.count >= 2 && tries < maxTries {
            let chunk = max(1, current.count / n)
            var reduced = false
            var start = 0
            while start < current.count && tries < maxTries {
                var candidate = current
                candidate.removeSubrange(start..<min(start + chunk, current.count))
                tries += 1
                if fails(candidate) {
                    current = candidate
                    n = max(n - 1, 2)
                    reduced = true
                    break
                }
                start += chunk
            }
            if !reduced {
                if n >= current.count { break }
                n = min(current.count, n * 2)
            }
        }
        var i = 0
        while i < current.count && tries < maxTries {
            var candidate = current
            candidate.remove(at: i)
            tries += 1
            if fails(candidate) { current = candidate } else { i += 1 }
        }
        return current
    }
}

/// A failing property case, shrunk and printed as a script.
struct ShrunkCase: CustomStringConvertible {
    var configuration: ScriptConfiguration
    var seed: UInt64
    var failure: PropertyFailure
    var script: String

    static func make(_ configuration: ScriptConfiguration, _ ops: [Operation], seed: UInt64,
                     _ failure: PropertyFailure) -> ShrunkCase {
        let small = Shrinker.shrink(ops) {
            DifferentialRunner.run(configuration, $0, seed: seed, thorough: true) != nil
        }
        let final = DifferentialRunner.run(configuration, small, seed: seed, thorough: true) ?? failure
        return ShrunkCase(configuration: configuration, seed: seed, failure: final,
                          script: propertyScript(configuration, final.executed))
    }

    var description: String {
        """
        property case failed (seed \(Hex.padded(seed)), \(configuration.scriptLine)): \(failure)
        shrunk to this script (save as repro.s2, replay with `kvmpt run --check repro.s2`; the failing statement is the last):
        \(script)
        """
    }
}
