#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Read-only, memory-mapped physical memory assembled from one or more raw
/// image files, each placed at a physical address (`--region PA:FILE`).
///
/// Files are mapped, never read: a 64 GiB sparse image costs only the pages
/// a walk touches. ``table(at:)`` hands out a page only when the whole
/// granule-sized table lies inside one region, so no read can go past the
/// end of a (possibly truncated) file. The pages are mapped `PROT_READ`:
/// only read-only views may walk a `TableImage`.
///
/// The files must not shrink while mapped (reading a page beyond a file's
/// new end raises SIGBUS, as for any mapped file).
public final class TableImage: TableMemory {
    /// One mapped file.
    public struct Region: Sendable, Hashable {
        /// Physical address of the file's first byte.
        public let physicalAddress: UInt64
        /// The file's size in bytes.
        public let byteCount: UInt64
        /// The file's path.
        public let path: String
        /// The first physical address past the region.
        public var end: UInt64 { physicalAddress &+ byteCount }
    }

    /// The regions, in physical address order.
    public let regions: [Region]
    /// The granule of the tables walked (the size of a table page).
    public let granule: Granule

    private let bases: [UnsafeMutableRawPointer]

    /// Maps each file at its physical address. Regions must not overlap,
    /// must not be empty, and must start 8-byte aligned.
    public init(regions requested: [(physicalAddress: UInt64, path: String)], granule: Granule) throws(ImageError) {
        self.granule = granule
        var mapped: [(Region, UnsafeMutableRawPointer)] = []
        func unmapAll() { for (r, p) in mapped { munmap(p, Int(r.byteCount)) } }
        for (pa, path) in requested {
            guard pa & 7 == 0 else {
                unmapAll()
                throw ImageError("\(path): region address \(Hex.short(pa)) is not 8-byte aligned")
            }
            let fd = open(path, O_RDONLY)
            guard fd >= 0 else {
                let why = String(cString: strerror(errno))
                unmapAll()
                throw ImageError("\(path): cannot open image: \(why)")
            }
            var st = stat()
            guard fstat(fd, &st) == 0 else {
                let why = String(cString: strerror(errno))
                close(fd)
                unmapAll()
                throw ImageError("\(path): cannot stat image: \(why)")
            }
            let size = UInt64(max(0, Int64(st.st_size)))
            guard (st.st_mode & S_IFMT) == S_IFREG else {
                close(fd)
                unmapAll()
                throw ImageError("\(path): not a regular file")
            }
            guard size > 0 else {
                close(fd)
                unmapAll()
                throw ImageError("\(path): image is empty")
            }
            guard pa <= UInt64.max - size else {
                close(fd)
                unmapAll()
                throw ImageError("\(path): region \(Hex.short(pa)) + \(Hex.short(size)) bytes wraps past 2^64")
            }
            let p = mmap(nil, Int(size), PROT_READ, MAP_PRIVATE, fd, 0)
            close(fd)
            guard let p, p != MAP_FAILED else {
                let why = String(cString: strerror(errno))
                unmapAll()
                throw ImageError("\(path): cannot map image (\(size) bytes): \(why)")
            }
            mapped.append((Region(physicalAddress: pa, byteCount: size, path: path), p))
        }
        guard !mapped.isEmpty else { throw ImageError("no image files given") }
        mapped.sort { $0.0.physicalAddress < $1.0.physicalAddress }
        for i in 1..<max(1, mapped.count) where mapped[i].0.physicalAddress < mapped[i - 1].0.end {
            let a = mapped[i - 1].0, b = mapped[i].0
            unmapAll()
            throw ImageError("regions overlap: \(a.path) covers \(Hex.short(a.physicalAddress))-\(Hex.short(a.end)), \(b.path) starts at \(Hex.short(b.physicalAddress))")
        }
        regions = mapped.map(\.0)
        bases = mapped.map(\.1)
    }

    deinit {
        for (r, p) in zip(regions, bases) { munmap(p, Int(r.byteCount)) }
    }

    /// The region index holding `pa`, if any.
    @inlinable
    func regionIndex(_ pa: UInt64) -> Int? {
        var lo = 0, hi = regions.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if regions[mid].end <= pa { lo = mid + 1 } else { hi = mid }
        }
        guard lo < regions.count, regions[lo].physicalAddress <= pa, pa < regions[lo].end else { return nil }
        return lo
    }

    /// The table page at `pa`, when the whole granule-sized, 8-byte aligned
    /// page lies inside one region.
    public func table(at pa: UInt64) -> UnsafeMutablePointer<UInt64>? {
        guard pa & 7 == 0, let i = regionIndex(pa) else { return nil }
        let r = regions[i]
        let offset = pa - r.physicalAddress
        guard granule.pageSize <= r.byteCount - offset else { return nil }
        return (bases[i] + Int(offset)).assumingMemoryBound(to: UInt64.self)
    }

    /// Whether a whole table page at `pa` can be read.
    public func contains(tableAt pa: UInt64) -> Bool { table(at: pa) != nil }

    /// Why ``table(at:)`` refuses `pa`, for error messages.
    public func whyUnreadable(_ pa: UInt64) -> String {
        if let i = regionIndex(pa) {
            let r = regions[i]
            return "the \(granule) table at \(Hex.short(pa)) runs past the end of \(r.path) (\(r.byteCount) bytes from \(Hex.short(r.physicalAddress))): truncated image"
        }
        let spans = regions.map { "\($0.path) \(Hex.short($0.physicalAddress))-\(Hex.short($0.end))" }.joined(separator: ", ")
        return "\(Hex.short(pa)) is outside the image (\(spans))"
    }

    /// The 64-bit little-endian word at `pa`, when inside a region.
    public func word(at pa: UInt64) -> UInt64? {
        guard pa & 7 == 0, let i = regionIndex(pa) else { return nil }
        let r = regions[i]
        let offset = pa - r.physicalAddress
        guard r.byteCount - offset >= 8 else { return nil }
        return UInt64(littleEndian: (bases[i] + Int(offset)).load(as: UInt64.self))
    }

    /// Total bytes mapped.
    public var byteCount: UInt64 { regions.reduce(0) { $0 &+ $1.byteCount } }
}
