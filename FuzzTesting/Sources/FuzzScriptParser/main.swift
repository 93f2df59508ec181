// libFuzzer target: the script parser (and, for small scripts, the runner
// with the invariant checker). See FuzzTesting/README.md.
#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzScriptParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let problem = FuzzEntry.parseScript(bytes) {
        print("FuzzScriptParser: \(problem)")
        abort()
    }
    return 0
}
