import XCTest
import TestSupport
@testable import Formats
@_spi(Tools) @testable import MiniRuntime

/// The Swift tokenizer against the `tokenizers` package on the committed corpus (goldens made by
/// scripts/reference/make_tokenizer_goldens.py), for both fixture tokenizers (LFM2 structure and plain GPT-2).
final class TokenizerTests: XCTestCase {
    func load(_ fixture: String) throws -> (Tokenizer, JSONValue, [String]) {
        let tok = try Tokenizer(
            json: try Data(contentsOf: URL(fileURLWithPath: fixtures + "/\(fixture)/model/tokenizer.json")),
            file: fixture)
        let g = try JSONValue.parse(
            data: try Data(contentsOf: URL(fileURLWithPath: fixtures + "/tokenizer/\(fixture).json")), file: fixture)
        let corpus = try JSONValue.parse(
            data: try Data(contentsOf: URL(fileURLWithPath: fixtures + "/tokenizer/corpus.json")), file: "corpus")
        return (tok, g, corpus.arrayValue!.map { $0.stringValue! })
    }

    func check(_ fixture: String, pattern: Tokenizer.Pattern) throws {
        let (tok, g, corpus) = try load(fixture)
        XCTAssertEqual(tok.pattern, pattern)
        let cases = g["cases"]!.arrayValue!
        XCTAssertEqual(cases.count, corpus.count)
        XCTAssertGreaterThanOrEqual(corpus.count, 300)
        var encodeFail = 0, decodeFail = 0
        for (s, c) in zip(corpus, cases) {
            let want = c["ids"]!.arrayValue!.map { $0.intValue! }
            let got = tok.encode(s)
            if got != want {
                encodeFail += 1
                if encodeFail <= 5 { XCTFail("\(fixture) encode \(s.debugDescription): got \(got), want \(want)") }
            }
            let dec = tok.decode(want)
            if dec != c["decoded"]!.stringValue! {
                decodeFail += 1
                if decodeFail <= 5 {
                    XCTFail(
                        """
                        \(fixture) decode \(want): got \(dec.debugDescription), \
                        want \(c["decoded"]!.stringValue!.debugDescription)
                        """
                    )
                }
            }
            // streaming decode yields the same text, never splitting a character
            var sd = StreamingDecoder(tok)
            var streamed = ""
            for id in want {
                let p = sd.push(id); streamed += p;
                XCTAssertFalse(p.unicodeScalars.contains { $0.value == 0xFFFD } && !dec.contains("\u{FFFD}"))
            }
            streamed += sd.flush()
            XCTAssertEqual(streamed, dec, "\(fixture) streamed \(s.debugDescription)")
        }
        XCTAssertEqual(encodeFail, 0, "\(fixture): \(encodeFail) of \(corpus.count) strings encode differently")
        XCTAssertEqual(decodeFail, 0)
        // chat pieces and system prompts, tokenized one piece at a time as ChatState does
        for key in ["chat_pieces", "system_prompts"] {
            for p in g[key]!.arrayValue! {
                XCTAssertEqual(
                    tok.encode(p["text"]!.stringValue!), p["ids"]!.arrayValue!.map { $0.intValue! },
                    p["text"]!.stringValue!)
            }
        }
    }

    func testLFM2StructureTokenizer() throws { try check("tiny-a", pattern: .llama3) }
    func testGPT2StructureTokenizer() throws { try check("tiny-b", pattern: .gpt2) }

    func testSpecialTokensAreMatchedFirst() throws {
        let (tok, _, _) = try load("tiny-a")
        XCTAssertEqual(Array(tok.encode("<|im_end|>\n").prefix(1)), [7])
        XCTAssertEqual(tok.encode("<|startoftext|>"), [1])
        XCTAssertEqual(tok.decode([1, 6]), "<|startoftext|><|im_start|>")
    }
}

/// `ignore_merges`: a hand-built tokenizer whose vocabulary holds words the merges cannot build (goldens from
/// the `tokenizers` package, scripts/reference/make_tokenizer_goldens.py).
final class IgnoreMergesTests: XCTestCase {
    func testIgnoreMerges() throws {
        let dir = fixtures + "/tokenizer"
        let tok = try Tokenizer(
            json: try Data(contentsOf: URL(fileURLWithPath: dir + "/ignore-merges/tokenizer.json")),
            file: "ignore-merges")
        let g = try JSONValue.parse(
            data: try Data(contentsOf: URL(fileURLWithPath: dir + "/ignore-merges.json")), file: "g")
        var sensitive = 0
        for c in g["cases"]!.arrayValue! {
            let s = c["text"]!.stringValue!
            let want = c["ids"]!.arrayValue!.map { $0.intValue! }
            XCTAssertEqual(tok.encode(s), want, s.debugDescription)
            XCTAssertEqual(tok.decode(want), c["decoded"]!.stringValue!)
            if let alt = c["ids_if_ignore_merges_were_false"]?.arrayValue?.map({ $0.intValue! }), alt != want {
                sensitive += 1
            }
        }
        XCTAssertGreaterThanOrEqual(sensitive, 5, "the corpus must exercise ignore_merges")
    }
}
