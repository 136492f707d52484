import Foundation
import XCTest
import TestSupport
import MiniRuntime

/// The README's library example, compiled and run here on the bundled tiny checkpoint; the test also checks that the
/// README shows exactly this code, so the two cannot drift apart.
final class LibraryExampleTests: XCTestCase {
    // README example begins
    static func speakBack(
        bundle bundlePath: String, question questionPath: String, reply replyPath: String
    ) async throws {
        let model = try LFMModel(path: bundlePath, options: ModelOptions(threads: 2))  // open once, share it
        let chat = Conversation(model: model, task: .chat)  // the reference's interleaved system prompt
        let question = try WAVReader.read(questionPath)  // any rate, mono or not
        let wav = try WAVWriter(path: replyPath, sampleRate: SpeechDecoder.sampleRate)
        for try await event in chat.reply(to: [.audio(question)], task: .chat, maxTokens: 64) {
            switch event {
            case .text(_, let piece): print(piece, terminator: "")
            case .samples(let pcm): try wav.write(pcm)  // 24 kHz, as soon as it is decoded
            case .audio, .done: break  // codes and statistics
            }
        }
        try wav.finish()
    }
    // README example ends

    func testReadmeExampleRunsAndMatchesTheReadme() async throws {
        let out = NSTemporaryDirectory() + "lfm-example-\(getpid()).wav"
        defer { try? FileManager.default.removeItem(atPath: out) }
        try await Self.speakBack(
            bundle: try Bundles.path("tiny-b", .q8_0), question: fixtures + "/audio/speech.wav", reply: out)
        let reply = try WAVReader.read(out)
        XCTAssertEqual(reply.sampleRate, 24000)
        XCTAssertGreaterThan(reply.samples.count, 0, "the example wrote speech")

        let me = try String(contentsOfFile: #filePath, encoding: .utf8)
        let readme = try String(contentsOfFile: fixtures + "/../../README.md", encoding: .utf8)
        let begin = me.range(of: "    // README example begins\n")!, end = me.range(of: "    // README example ends")!
        let lines = me[begin.upperBound..<end.lowerBound].split(separator: "\n", omittingEmptySubsequences: false)
        let open = try XCTUnwrap(lines.firstIndex { $0.hasSuffix("throws {") })  // the signature's last line
        let body = lines[(open + 1)...].dropLast(2)  // the closing brace
            .map { $0.hasPrefix("        ") ? String($0.dropFirst(8)) : String($0) }
        XCTAssertGreaterThan(body.count, 8)
        for line in body where !line.isEmpty {
            XCTAssertTrue(readme.contains(line), "README lacks the example line: \(line)")
        }
    }
}
