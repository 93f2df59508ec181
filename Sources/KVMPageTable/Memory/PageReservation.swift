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
    /// The first usable byte, aligned to `alignment`.
    @usableFromInline let base: UnsafeMutableRawPointer
    /// Usable bytes from `base`.
    @usableFromInline let byteCount: Int
    /// What was mapped (the usable span plus alignment slack).
    private let mapping: UnsafeMutableRawPointer
    private let mappedBytes: Int

    /// Reserves `byteCount` bytes aligned to `alignment` (a power of two),
    /// halving the request until the OS agrees (down to `minimum`); nil if
    /// even that fails. `mmap` aligns only to the OS page, so a 64 KiB
    /// granule needs the slack.
    init?(byteCount: Int, minimum: Int, alignment: Int = 1) {
        precondition(alignment > 0 && alignment & (alignment - 1) == 0, "alignment must be a power of two")
        var size = byteCount
        while size >= minimum {
            let mapped = size + alignment
            let p = mmap(nil, mapped, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
            if let p, p != MAP_FAILED {
                let address = Int(bitPattern: p)
                let aligned = (address + alignment - 1) & ~(alignment - 1)
                mapping = p
                mappedBytes = mapped
                base = p + (aligned - address)
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
        munmap(mapping, mappedBytes)
    }
}
