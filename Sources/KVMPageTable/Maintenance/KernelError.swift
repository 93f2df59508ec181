/// A kernel error number, as the page-table API returns it (negated).
///
/// Operations throw these exactly where the kernel returns them, so that a
/// transcript can print `-ENOMEM` where the kernel did.
public struct KernelError: Error, RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The positive errno value.
    public var rawValue: Int32

    /// Wraps a positive errno value.
    @inlinable public init(rawValue: Int32) { self.rawValue = rawValue }

    /// `EPERM` (1).
    public static let eperm = KernelError(rawValue: 1)
    /// `ENOENT` (2).
    public static let enoent = KernelError(rawValue: 2)
    /// `E2BIG` (7): internally, "no leaf fits here, descend".
    public static let e2big = KernelError(rawValue: 7)
    /// `EAGAIN` (11).
    public static let eagain = KernelError(rawValue: 11)
    /// `ENOMEM` (12): the page budget (memcache) ran dry.
    public static let enomem = KernelError(rawValue: 12)
    /// `EFAULT` (14): a table pointer leads outside the memory walked.
    public static let efault = KernelError(rawValue: 14)
    /// `EEXIST` (17).
    public static let eexist = KernelError(rawValue: 17)
    /// `EINVAL` (22).
    public static let einval = KernelError(rawValue: 22)
    /// `ERANGE` (34): an address beyond the table's input range.
    public static let erange = KernelError(rawValue: 34)

    /// The negative return code (`-ENOMEM` is -12).
    @inlinable public var code: Int32 { -rawValue }

    /// The error for a negative return code, nil for zero or positive codes.
    @inlinable public init?(code: Int32) {
        guard code < 0 else { return nil }
        self.rawValue = -code
    }

    /// `-ENOMEM`, `-EINVAL`, …, or `-E<n>` for numbers without a name here.
    public var description: String {
        switch rawValue {
        case 1: "-EPERM"
        case 2: "-ENOENT"
        case 7: "-E2BIG"
        case 11: "-EAGAIN"
        case 12: "-ENOMEM"
        case 14: "-EFAULT"
        case 17: "-EEXIST"
        case 22: "-EINVAL"
        case 34: "-ERANGE"
        default: "-E\(rawValue)"
        }
    }
}
