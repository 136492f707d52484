import XCTest
import TestSupport
@testable import Formats
@_spi(Tools) @testable import MiniRuntime

/// Replays the fuzz regression corpus (Tests/Fixtures/fuzz/<target>/: crashing inputs found by scripts/fuzz.sh, and
/// a sample of its working corpus) through the same parsers as the fuzz harness: each must return or throw.
final class FuzzRegressionTests: XCTestCase {
    func testReplayCorpus() throws {
        let root = fixtures + "/fuzz"
        let tok = try Tokenizer(
            json: Data(contentsOf: URL(fileURLWithPath: fixtures + "/tiny-a/model/tokenizer.json")),
            file: "tokenizer.json")
        var n = 0
        for target in ["safetensors", "gguf", "wav", "tokenizer", "config", "codes"] {
            let dir = root + "/" + target
            let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            for f in files.sorted() {
                let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + f))
                switch target {
                case "safetensors": _ = try? SafetensorsFile(file: MappedFile(data: data, name: f))
                case "gguf": _ = try? GGUFFile(file: MappedFile(data: data, name: f))
                case "wav": _ = try? WAVReader.parse(data, name: f)
                case "config":
                    _ = try? decodeConfig(LFM2AudioConfig.self, from: data, file: f)
                    _ = try? decodeConfig(MimiConfig.self, from: data, file: f)
                case "codes": _ = try? CodesJSON.parse(data, name: f)
                default:
                    let ids = tok.encode(String(decoding: data, as: UTF8.self))
                    _ = tok.decode(ids)
                    _ = try? Tokenizer(json: data, file: f)
                }
                n += 1
            }
        }
        XCTAssertGreaterThan(n, 0, "the corpus is committed")
        print("replayed \(n) fuzz corpus inputs")
    }
}
