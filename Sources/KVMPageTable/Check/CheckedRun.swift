/// A statement after which the table broke an invariant.
public struct CheckedRunFailure: Error, CustomStringConvertible, Sendable {
    /// The statement that ran last.
    public var statement: Statement
    /// The first invariant broken after it.
    public var violation: InvariantViolation
    /// The transcript up to and including that statement.
    public var transcript: String

    /// `FILE:LINE: statement: invariant broken: …`, as `kvmpt run --check` prints it.
    public func message(fileName: String) -> String {
        "\(fileName):\(statement.line): \(statement.operation.normalized): invariant broken: \(violation)"
    }

    /// The message with a placeholder file name.
    public var description: String { message(fileName: "<script>") }
}

extension ScriptRunner {
    /// The transcript, with ``PageTable/check()`` run after every statement
    /// (the debug hook the tests use): throws at the first broken invariant.
    ///
    /// With `toleratingKernelOddities`, the hyp map WARN refcount excess
    /// (a state the kernel itself leaves) does not count as broken.
    public func checkedTranscript(toleratingKernelOddities: Bool = false) throws(CheckedRunFailure) -> String {
        var out = header + "\n"
        let table = self.table.pageTable
        for statement in script.statements {
            out += execute(statement.operation)
            do throws(InvariantViolation) {
                if toleratingKernelOddities {
                    try table.checkToleratingKernelOddities()
                } else {
                    try table.check()
                }
            } catch {
                throw CheckedRunFailure(statement: statement, violation: error, transcript: out)
            }
        }
        return out
    }
}
