// Stub: owned by the robustness work (issue 6).
/// A broken table invariant.
public struct InvariantViolation: Error, CustomStringConvertible {
    /// What is broken, with address and level.
    public var description: String
}

extension PageTable {
    /// Checks every structural invariant of the table.
    public func check() throws(InvariantViolation) {}
}
