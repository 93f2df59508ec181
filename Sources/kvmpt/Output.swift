#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Buffered writes to standard output, unbuffered to standard error, by
/// plain `write(2)` calls.
enum Output {
    nonisolated(unsafe) private static var buffer: [UInt8] = {
        var b: [UInt8] = []
        b.reserveCapacity(1 << 20)
        return b
    }()
    nonisolated(unsafe) private static var failed = false

    /// Queues `text` for standard output.
    static func out(_ text: String) {
        var text = text
        text.withUTF8 { buffer.append(contentsOf: $0) }
        if buffer.count >= 1 << 20 { flush() }
    }

    /// Writes `text` to standard error at once.
    static func err(_ text: String) {
        var text = text
        text.withUTF8 { _ = writeAll(2, $0) }
    }

    /// Writes what is queued; false if any write to standard output failed.
    @discardableResult
    static func flush() -> Bool {
        if !buffer.isEmpty {
            buffer.withUnsafeBufferPointer { if !writeAll(1, $0) { failed = true } }
            buffer.removeAll(keepingCapacity: true)
        }
        return !failed
    }

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            done += n
        }
        return true
    }
}

/// Reads a whole file, or standard input for `-`.
enum InputFile {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func read(_ path: String) throws(Failure) -> [UInt8] {
        let fd: Int32 = path == "-" ? 0 : open(path, O_RDONLY)
        guard fd >= 0 else {
            throw Failure(description: "cannot read '\(path)': \(String(cString: strerror(errno)))")
        }
        defer { if fd != 0 { close(fd) } }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "cannot read '\(path)': \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return bytes
    }
}
