#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A span of zero-filled, page-aligned virtual memory that is committed only
/// as it is touched, released in `deinit`.
///
/// This is the one place kvmpt asks the OS for memory. Reserving the whole
/// span up front lets a physical address translate to a pointer with one
/// addition, and untouched pages cost nothing.
@usableFromInline
struct PageReservation: ~Copyable {
    /// The first byte; aligned to at least the OS page size.
    @usableFromInline let base: UnsafeMutableRawPointer
    /// Bytes reserved.
    @usableFromInline let byteCount: Int

    /// Reserves `byteCount` bytes, halving the request until the OS agrees
    /// (down to `minimum`); nil if even that fails.
    init?(byteCount: Int, minimum: Int) {
        var size = byteCount
        while size >= minimum {
            let p = mmap(nil, size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
            if let p, p != MAP_FAILED {
                base = p
                self.byteCount = size
                return
            }
            size /= 2
        }
        return nil
    }

    /// Hands the pages in `[offset, offset + count)` back to the OS; they
    /// read as zero when touched again.
    func discard(offset: Int, count: Int) {
        _ = madvise(base + offset, count, MADV_DONTNEED)
    }

    deinit {
        munmap(base, byteCount)
    }
}
