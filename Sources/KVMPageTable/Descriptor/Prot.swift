import CKVMPageTable

/// Permissions and attributes of a mapping (`enum kvm_pgtable_prot`).
public struct Prot: OptionSet, Hashable, Sendable, CustomStringConvertible {
    /// The kernel's bit values.
    public var rawValue: UInt64

    /// Wraps raw prot bits.
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// Privileged execute.
    public static let px = Prot(rawValue: kvm_pgtable_prot.KVM_PGTABLE_PROT_PX.rawValue)
    /// Unprivileged execute.
    public static let ux = Prot(rawValue: kvm_pgtable_prot.KVM_PGTABLE_PROT_UX.rawValue)
    /// Execute (`PX | UX`).
    public static let execute = Prot(rawValue: kvm_pgtable_prot.KVM_PGTABLE_PROT_X.rawValue)
    /// Write.
    public static let write = Prot(rawValue: kvm_pgtable_prot.KVM_PGTABLE_PROT_W.rawValue)
    /// Read.
    public static let read = Prot(rawValue: kvm_pgtable_prot.KVM_PGTABLE_PROT_R.rawValue)
    /// Device-nGnRE memory.
    public static let device = Prot(rawValue: kvm_pgtable_prot.KVM_PGTABLE_PROT_DEVICE.rawValue)
    /// Normal non-cacheable memory.
    public static let normalNC = Prot(rawValue: kvm_pgtable_prot.KVM_PGTABLE_PROT_NORMAL_NC.rawValue)
    /// Software bit 0 (descriptor bit 55).
    public static let sw0 = Prot(rawValue: kvm_pgtable_prot.KVM_PGTABLE_PROT_SW0.rawValue)
    /// Software bit 1 (descriptor bit 56).
    public static let sw1 = Prot(rawValue: kvm_pgtable_prot.KVM_PGTABLE_PROT_SW1.rawValue)
    /// Software bit 2 (descriptor bit 57).
    public static let sw2 = Prot(rawValue: kvm_pgtable_prot.KVM_PGTABLE_PROT_SW2.rawValue)
    /// Software bit 3 (descriptor bit 58).
    public static let sw3 = Prot(rawValue: kvm_pgtable_prot.KVM_PGTABLE_PROT_SW3.rawValue)

    /// Read and write.
    public static let readWrite: Prot = [.read, .write]

    /// Parses script letters `r w x d n` (repeats allowed); nil on any other.
    public init?(letters: Substring) {
        var prot: Prot = []
        for c in letters {
            switch c {
            case "r": prot.insert(.read)
            case "w": prot.insert(.write)
            case "x": prot.insert(.execute)
            case "d": prot.insert(.device)
            case "n": prot.insert(.normalNC)
            default: return nil
            }
        }
        self = prot
    }

    /// Letters in the transcript's order `rwxdn` (`x` for either execute bit).
    public var letters: String {
        var s = ""
        if contains(.read) { s += "r" }
        if contains(.write) { s += "w" }
        if !intersection(.execute).isEmpty { s += "x" }
        if contains(.device) { s += "d" }
        if contains(.normalNC) { s += "n" }
        return s
    }

    /// The letters, or `-` for none.
    public var description: String { isEmpty ? "-" : letters }
}
