import XCTest
import TestSupport
@_spi(Tools) @testable import MiniRuntime

/// The resampler against torchaudio.functional.resample (goldens from scripts/reference/make_resample_goldens.py).
final class ResamplerTests: XCTestCase {
    func testMatchesTorchaudio() throws {
        let g = try Goldens(fixtures + "/audio/resample.safetensors")
        for rate in [8000, 22050, 24000, 44100, 48000, 11025] {
            let x = g.floats("in.\(rate)"), want = g.floats("out.\(rate)")
            let y = try Resampler(from: rate, to: 16000).process(x)
            XCTAssertEqual(y.count, want.count, "\(rate)")
            let e = relErr(y, want)
            XCTAssertLessThan(e, 1e-5, "\(rate) Hz")
            print("resample \(rate) → 16000: \(x.count) → \(y.count) samples, rel err \(e)")
        }
        XCTAssertEqual(try Resampler(from: 16000, to: 16000).process([1, 2, 3]), [1, 2, 3])
        XCTAssertThrowsError(try Resampler(from: 0, to: 16000))
    }
}
