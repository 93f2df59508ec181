// Stub: owned by the image/decode work (issue 3).
import ArgumentParser

struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Decode a saved table image (not yet implemented).")
    func run() throws { throw ValidationError("decode is not implemented yet") }
}
