import XCTest
import TestSupport
@_spi(Tools) @testable import MiniRuntime

/// WAV decoding over every encoding, layouts real files have, and malformed files.
final class WAVTests: XCTestCase {
    /// Builds a WAV: fmt (optionally extensible), optional extra chunks before/after data, data before fmt.
    func wav(
        format: Int, bits: Int, channels: Int, rate: Int, frames: [[Double]], extensible: Bool = false,
        extraBefore: [(String, [UInt8])] = [], extraAfter: [(String, [UInt8])] = [], dataFirst: Bool = false
    ) -> Data {
        func le(_ v: Int, _ n: Int) -> [UInt8] { (0..<n).map { UInt8((v >> (8 * $0)) & 0xff) } }
        let bytesPer = bits / 8
        var data: [UInt8] = []
        for f in frames {
            for c in 0..<channels {
                let x = f[c]
                switch (format, bits) {
                case (1, 8): data += [UInt8(max(0, min(255, Int((x * 128 + 128).rounded()))))]
                case (1, 16): data += le(Int((x * 32767).rounded()) & 0xffff, 2)
                case (1, 24): data += le(Int((x * 8_388_607).rounded()) & 0xffffff, 3)
                case (1, 32): data += le(Int((x * 2_147_483_647).rounded()) & 0xffff_ffff, 4)
                case (3, 32): data += le(Int(Float(x).bitPattern), 4)
                default: data += le(Int(truncatingIfNeeded: x.bitPattern), 8)
                }
            }
        }
        var fmt =
            le(extensible ? 0xFFFE : format, 2) + le(channels, 2) + le(rate, 4) + le(rate * channels * bytesPer, 4)
            + le(channels * bytesPer, 2) + le(bits, 2)
        if extensible {
            fmt +=
                le(22, 2) + le(bits, 2) + le(0, 4) + le(format, 2) + [
                    0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71,
                ]
        }
        func chunk(_ id: String, _ body: [UInt8]) -> [UInt8] {
            Array(id.utf8) + le(body.count, 4) + body + (body.count % 2 == 1 ? [0] : [])
        }
        var body: [UInt8] = Array("WAVE".utf8)
        for (id, c) in extraBefore { body += chunk(id, c) }
        if dataFirst {
            body += chunk("data", data) + chunk("fmt ", fmt)
        } else {
            body += chunk("fmt ", fmt) + chunk("data", data)
        }
        for (id, c) in extraAfter { body += chunk(id, c) }
        return Data(Array("RIFF".utf8) + le(body.count, 4) + body)
    }

    let sine = (0..<480).map { [0.5 * sin(Double($0) * 0.05), -0.25 * cos(Double($0) * 0.02)] }

    func testEveryEncodingDecodes() throws {
        for (format, bits, tol) in [
            (1, 8, 1.0 / 64), (1, 16, 1e-4), (1, 24, 1e-6), (1, 32, 1e-6), (3, 32, 1e-7), (3, 64, 1e-7),
        ] {
            for ext in [false, true] {
                let clip = try WAVReader.parse(
                    wav(format: format, bits: bits, channels: 2, rate: 22050, frames: sine, extensible: ext),
                    name: "t.wav")
                XCTAssertEqual(clip.sampleRate, 22050)
                XCTAssertEqual(clip.channels, 2)
                XCTAssertEqual(clip.samples.count, sine.count)
                for (i, f) in sine.enumerated() {
                    XCTAssertEqual(
                        Double(clip.samples[i]), (f[0] + f[1]) / 2, accuracy: tol, "\(format)/\(bits) ext \(ext)")
                }
            }
        }
    }

    func testChunkLayouts() throws {
        let mono = sine.map { [$0[0]] }
        let withList = wav(
            format: 1, bits: 16, channels: 1, rate: 16000, frames: mono,
            extraBefore: [("LIST", Array("INFOISFT".utf8) + [1, 2, 3])], extraAfter: [("cue ", [1, 2, 3, 4, 5])])
        XCTAssertEqual(try WAVReader.parse(withList, name: "a").samples.count, mono.count)
        let dataFirst = wav(format: 3, bits: 32, channels: 1, rate: 48000, frames: mono, dataFirst: true)
        let c = try WAVReader.parse(dataFirst, name: "b")
        XCTAssertEqual(c.samples.count, mono.count); XCTAssertEqual(c.sampleRate, 48000)
        // an odd-sized data chunk (8-bit mono, odd count) followed by another chunk
        let odd = wav(
            format: 1, bits: 8, channels: 1, rate: 8000, frames: Array(mono.prefix(101)),
            extraAfter: [("LIST", [9, 9])])
        XCTAssertEqual(try WAVReader.parse(odd, name: "c").samples.count, 101)
    }

    func testMalformedFilesAreClearErrors() {
        let good = wav(format: 1, bits: 16, channels: 1, rate: 16000, frames: sine.map { [$0[0]] })
        func expect(_ d: Data, _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(try WAVReader.parse(d, name: "bad.wav"), line: line) { e in
                XCTAssertTrue("\(e)".contains("bad.wav") && "\(e)".contains(fragment), "\(e)", line: line)
            }
        }
        expect(Data(), "not a WAV")
        expect(Data("RIFF0000WAVX".utf8), "not a RIFF/WAVE")
        expect(good.prefix(30), "fmt chunk is truncated")
        expect(good.prefix(good.count - 100), "truncated")
        var zeroCh = good; zeroCh[22] = 0; zeroCh[23] = 0
        expect(zeroCh, "0 channels")
        var badBits = good; badBits[34] = 12
        expect(badBits, "12-bit PCM")
        var badFmt = good; badFmt[20] = 7
        expect(badFmt, "audio format 7")
        var zeroRate = good; zeroRate.replaceSubrange(24..<28, with: [0, 0, 0, 0])
        expect(zeroRate, "sample rate 0")
        let noData = Data(Array(good.prefix(36)))
        expect(noData, "no data chunk")
    }
}
