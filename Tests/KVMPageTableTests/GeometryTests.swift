import Testing
@testable import KVMPageTable

@Suite struct GeometryTests {
    @Test func stage2FourKilobyte40Bit() throws {
        let g = try TableGeometry.stage2(granule: .size4K, iaBits: 40, lpa2: false)
        #expect(g.startLevel == Level(1))
        #expect(g.rootPages == 2)
    }
}
