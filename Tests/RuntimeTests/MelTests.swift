import XCTest
import TestSupport
@testable import Formats
@_spi(Tools) @testable import MiniRuntime

/// The log-mel front end against the reference's `a.mel` (fixtures' 1 s synthetic waveform at 16 kHz).
final class MelTests: XCTestCase {
    func testMelMatchesReference() throws {
        for fixture in ["tiny-a", "tiny-b"] {
            let g = try Goldens(fixtures + "/\(fixture)/golden.safetensors")
            let wave = g.floats("input.wave_16k")
            let want = g.floats("a.mel")
            let shape = g.shape("a.mel")
            let mel = try MelFrontEnd()
            let (got, valid) = mel.features(wave)
            let T = got[0].count
            XCTAssertEqual(T, mel.frameCount(samples: wave.count))
            XCTAssertEqual(valid, wave.count / 160)
            XCTAssertEqual(
                T, g.ints("a.mel_len").first, "a.mel_len is the frame count fed to the encoder (all T frames)")
            XCTAssertEqual(shape.suffix(2), [128, T])
            let flat = got.flatMap { $0 }
            let e = relErr(flat, want)
            XCTAssertLessThan(e, 1e-4, fixture)
            XCTAssertTrue(got.allSatisfy { $0[T - 1] == 0 }, "the last frame is masked to zero")
            print("\(fixture): mel [128 × \(T)] rel err \(e)")
        }
    }

    func testFilterbankCheckValues() {
        let fb = MelFrontEnd.slaneyFilterbank(sampleRate: 16000, nFFT: 512, nMels: 128, fMin: 0, fMax: 8000)
        XCTAssertEqual(fb.flatMap { $0 }.reduce(0, +), 4.0904877, accuracy: 1e-5)
        XCTAssertEqual(fb.flatMap { $0 }.filter { $0 != 0 }.count, 504)
        XCTAssertEqual(fb[0][1], 0.0283775, accuracy: 1e-6)
    }
}
