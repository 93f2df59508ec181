// Stub: owned by the image/decode work (issue 3).
/// Writes a table's memory as a raw physical-memory image plus `.regs`.
public enum ImageWriter {
    /// Writes `table`'s arena to `path` and the register sidecar to `path.regs`.
    public static func save(_ table: any PageTable, to path: String) throws {
        throw KernelError.einval
    }
}
