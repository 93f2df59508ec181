#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a table's memory as a raw physical-memory image plus `.regs`.
///
/// The image holds every page the arena ever handed out, from page 0 (byte
/// 0 = the arena's base PA). Pages that are free at the time of saving are
/// written as zeroes, and all-zero pages are left as holes, so the file is
/// sparse where the filesystem allows. Both files are written whole or not
/// at all: each goes to a temporary file in the same directory, is synced,
/// and is renamed over the destination.
public enum ImageWriter {
    /// Writes `table`'s arena to `path` and the register sidecar
    /// (``KernelRegisters/registers(for:)``) to `path.regs`.
    public static func save(_ table: any PageTable, to path: String) throws {
        let arena = table.arena
        let pageSize = Int(arena.granule.pageSize)
        let live = Set(arena.livePageAddresses())
        let base = arena.basePhysicalAddress
        try writeAtomically(path) { fd in
            try arena.withImageBytes { bytes in
                let pages = bytes.count / pageSize
                guard ftruncate(fd, off_t(bytes.count)) == 0 else {
                    throw ImageError("\(path): cannot size image: \(String(cString: strerror(errno)))")
                }
                for i in 0..<pages {
                    guard live.contains(base + UInt64(i * pageSize)) else { continue }
                    let page = UnsafeRawBufferPointer(rebasing: bytes[(i * pageSize)..<((i + 1) * pageSize)])
                    if page.allSatisfy({ $0 == 0 }) { continue }
                    try writeAll(fd, page, at: off_t(i * pageSize), path: path)
                }
            }
        }
        let regs = KernelRegisters.registers(for: table).text
        try writeAtomically(path + ".regs") { fd in
            var text = regs
            try text.withUTF8 { try writeAll(fd, UnsafeRawBufferPointer($0), at: 0, path: path + ".regs") }
        }
    }

    /// Writes `text` to `path` whole or not at all.
    public static func writeText(_ text: String, to path: String) throws {
        try writeAtomically(path) { fd in
            var text = text
            try text.withUTF8 { try writeAll(fd, UnsafeRawBufferPointer($0), at: 0, path: path) }
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: off_t, path: String) throws {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, offset + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw ImageError("\(path): write failed: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }

    /// Creates a temporary file beside `path`, lets `body` fill it, syncs
    /// it and renames it over `path`; removes it on any failure.
    static func writeAtomically(_ path: String, _ body: (Int32) throws -> Void) throws {
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        var template = Array("\(dir.isEmpty ? "/" : dir)/.\(name).XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw ImageError("\(path): cannot create a temporary file in \(dir): \(String(cString: strerror(errno)))")
        }
        let tmp = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        var isOpen = true
        do {
            try body(fd)
            guard fchmod(fd, 0o644) == 0, fsync(fd) == 0 else {
                throw ImageError("\(path): cannot sync: \(String(cString: strerror(errno)))")
            }
            isOpen = false
            guard close(fd) == 0 else {
                throw ImageError("\(path): close failed: \(String(cString: strerror(errno)))")
            }
            guard rename(tmp, path) == 0 else {
                throw ImageError("\(path): cannot rename into place: \(String(cString: strerror(errno)))")
            }
        } catch {
            if isOpen { close(fd) }
            unlink(tmp)
            throw error
        }
    }
}
