// libFuzzer target: registers and a physical-memory image decoded from
// bytes, then decoded, dumped, translated, linted and diffed through
// TableInspector. See FuzzTesting/README.md and ImageFuzzBody.swift.
#if canImport(Glibc)
import Glibc
#endif

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImageDecode(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let problem = ImageFuzzEntry.decode(bytes) {
        print("FuzzImageDecode: \(problem)")
        abort()
    }
    return 0
}
