// Placeholder until the ptdump printer lands.
public struct PtdumpPrinter {
    public init(inputBits: Int, startLevel: Level, granule: Granule) {}
    public mutating func note(address: UInt64, level: Level, entry: UInt64) {}
    public var text: String { "---[ Guest IPA ]---\n" }
}
