// libFuzzer target: operation sequences decoded from bytes, replayed on the
// library and the reference model, with the invariant checker as the
// oracle. See FuzzTesting/README.md.
#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOperations(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let problem = FuzzEntry.operations(bytes) {
        print("FuzzOperations: \(problem)")
        abort()
    }
    return 0
}
