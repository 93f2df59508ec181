/// The kernel's depth-first page-table walk (`kvm_pgtable_walk`), over any
/// ``TableMemory``.
///
/// Entries are visited in address order. A table entry gets a pre-order
/// visit, then its children, then a post-order visit; anything else
/// (blocks, pages, empty and invalid entries) gets a leaf visit. After a
/// leaf or pre-order visit the entry is read again, so a visitor that
/// installs a table is walked into it.
public struct Walker<Memory: TableMemory> {
    /// Where the tables live.
    public let memory: Memory
    /// The table's shape.
    public let geometry: TableGeometry
    /// The descriptor format, for following table pointers.
    public let format: DescriptorFormat
    /// Physical address of the first root page.
    public let rootPhysicalAddress: UInt64
    /// The granule's level arithmetic.
    public let math: LevelMath

    /// A walker over a table rooted at `rootPhysicalAddress`.
    @inlinable
    public init(memory: Memory, geometry: TableGeometry, rootPhysicalAddress: UInt64) {
        self.memory = memory
        self.geometry = geometry
        self.format = geometry.format
        self.rootPhysicalAddress = rootPhysicalAddress
        self.math = LevelMath(geometry.granule)
    }

    /// The walk's moving cursor (`struct kvm_pgtable_walk_data`).
    @usableFromInline
    struct Cursor {
        @usableFromInline let start: UInt64
        @usableFromInline var addr: UInt64
        @usableFromInline let end: UInt64
        @usableFromInline init(start: UInt64, addr: UInt64, end: UInt64) {
            self.start = start
            self.addr = addr
            self.end = end
        }
    }

    /// Walks `[addr, addr + size)`, widened to whole pages, visiting with
    /// `visitor`; returns 0 or the negative errno that stopped the walk.
    ///
    /// As in the kernel, the end is computed in 64-bit wrapping arithmetic
    /// and anything beyond `2^inputBits` is `-ERANGE`.
    @inlinable
    public func walk<V: Visitor>(_ addr: UInt64, size: UInt64, visitor: inout V) -> Int32 {
        let mask = math.pageSize &- 1
        let start = addr & ~mask
        let end = (start &+ size &+ mask) & ~mask
        var cursor = Cursor(start: start, addr: start, end: end)
        let limit = geometry.inputLimit
        if cursor.addr > limit || cursor.end > limit { return KernelError.erange.code }
        let pageBytes = math.pageSize
        var idx = geometry.rootPageIndex(of: cursor.addr)
        var ret: Int32 = 0
        while cursor.addr < cursor.end {
            guard idx < geometry.rootPages,
                  let page = memory.table(at: rootPhysicalAddress &+ UInt64(idx) &* pageBytes)
            else { return KernelError.efault.code }
            ret = walkTable(&cursor, page, geometry.startLevel, &visitor)
            if ret != 0 { break }
            idx += 1
        }
        return ret
    }

    /// Walks one detached table at `level` over `[0, size)`, as the kernel
    /// does for unlinked tables (the addresses are nominal).
    @inlinable
    public func walkUnlinked<V: Visitor>(_ table: UnsafeMutablePointer<UInt64>, level: Level,
                                         size: UInt64, visitor: inout V) -> Int32 {
        var cursor = Cursor(start: 0, addr: 0, end: size)
        return walkTable(&cursor, table, level, &visitor)
    }

    @inlinable
    func walkTable<V: Visitor>(_ cursor: inout Cursor, _ table: UnsafeMutablePointer<UInt64>,
                               _ level: Level, _ visitor: inout V) -> Int32 {
        guard level >= .first, level <= .last else { return KernelError.einval.code }
        let entries = Int(math.indexMask) &+ 1
        var idx = Int((cursor.addr &>> math.shift(level)) & math.indexMask)
        var ret: Int32 = 0
        while idx < entries {
            if cursor.addr >= cursor.end { break }
            ret = visitEntry(&cursor, table + idx, level, &visitor)
            if ret != 0 { break }
            idx += 1
        }
        return ret
    }

    @inlinable
    static func goesOn(_ flags: WalkFlags, _ r: Int32) -> Bool {
        if r == KernelError.eagain.code { return !flags.contains(.handleFault) }
        return r == 0
    }

    @inlinable
    func visitEntry<V: Visitor>(_ cursor: inout Cursor, _ ptep: UnsafeMutablePointer<UInt64>,
                                _ level: Level, _ visitor: inout V) -> Int32 {
        let flags = visitor.flags
        var ctx = VisitContext(ptep: ptep, old: ptep.pointee, start: cursor.start, addr: cursor.addr,
                               end: cursor.end, level: level, flags: flags)
        var ret: Int32 = 0
        var table = Descriptor(ctx.old).isTable(at: level)
        var reload = false
        if table, flags.contains(.tablePre) {
            ret = visitor.visit(&ctx, .tablePre)
            reload = true
        }
        if !table, flags.contains(.leaf) {
            ret = visitor.visit(&ctx, .leaf)
            reload = true
        }
        if reload {
            ctx.old = ptep.pointee
            table = Descriptor(ctx.old).isTable(at: level)
        }
        if !Self.goesOn(flags, ret) { return ret }
        if !table {
            let size = math.size(level)
            cursor.addr = (cursor.addr & ~(size &- 1)) &+ size
            return 0
        }
        let childPA = format.physical(fromPTE: ctx.old)
        if visitor.shouldDescend(ctx, into: childPA) {
            guard let child = memory.table(at: childPA) else {
                ret = visitor.unreachableTable(ctx, physicalAddress: childPA)
                if Self.goesOn(flags, ret) {
                    let size = math.size(level)
                    cursor.addr = (cursor.addr & ~(size &- 1)) &+ size
                    return 0
                }
                return ret
            }
            ret = walkTable(&cursor, child, level.next, &visitor)
            if !Self.goesOn(flags, ret) { return ret }
        } else {
            let size = math.size(level)
            cursor.addr = (cursor.addr & ~(size &- 1)) &+ size
        }
        if flags.contains(.tablePost) {
            ret = visitor.visit(&ctx, .tablePost)
        }
        return Self.goesOn(flags, ret) ? 0 : ret
    }
}
