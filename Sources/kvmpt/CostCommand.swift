// Stub: owned by the cost work (issue 4).
import ArgumentParser

struct Cost: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Page vs block vs fault mapping cost (not yet implemented).")
    func run() throws { throw ValidationError("cost is not implemented yet") }
}
