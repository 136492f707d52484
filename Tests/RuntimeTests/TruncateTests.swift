import Foundation
import XCTest
import TestSupport
@testable import Formats
@testable import Quantize
@_spi(Tools) @testable import MiniRuntime

/// `Conversation.truncateAnswer`: an interrupted answer keeps only the frames that were heard, and the next turn
/// continues from exactly the history of an answer that had stopped there.
final class TruncateTests: XCTestCase {
    static func answer(_ c: Conversation, maxTokens: Int) throws -> (steps: [Bool], frames: Int) {
        var steps: [Bool] = []  // true: a frame
        _ = try c.generate(
            user: [.text("Good morning, everyone.")], mode: .interleaved, maxTokens: maxTokens, sampling: .greedy,
            audioSampling: .greedy
        ) { ev in
            switch ev {
            case .text: steps.append(false)
            case .audio: steps.append(true)
            default: break
            }
        }
        return (steps, steps.filter { $0 }.count)
    }

    /// The first text logits of the next turn, and its greedy ids.
    static func nextTurn(_ c: Conversation) throws -> (logits: [Float], ids: [Int]) {
        let first = FirstLogits()
        c.setTrace { e in if e.name == "text.logits" { first.set(e.values) } }
        var ids: [Int] = []
        _ = try c.generate(user: "Tell me more.", maxTokens: 6, sampling: .greedy) {
            if case .text(let id, _) = $0 { ids.append(id) }
        }
        c.setTrace(nil)
        return (first.values!, ids)
    }

    func testTruncatedAnswerContinuesLikeAnAnswerThatStoppedThere() throws {
        let model = try LFMModel(
            path: try Bundles.path("tiny-b", .f32), options: ModelOptions(threads: 2, contextLimit: 512))
        let task = TaskPreset.chat
        let a = Conversation(model: model, task: task)
        let full = try Self.answer(a, maxTokens: 30)
        XCTAssertGreaterThanOrEqual(full.frames, 6, "the answer speaks")
        let keep = 3
        XCTAssertEqual(try a.truncateAnswer(keepingFrames: keep), keep)
        // the answer that stops right after its third frame
        let stepOfThird = full.steps.indices.filter { full.steps[$0] }[keep - 1]
        let b = Conversation(model: model, task: task)
        let short = try Self.answer(b, maxTokens: stepOfThird + 1)
        XCTAssertEqual(short.frames, keep)
        XCTAssertEqual(a.history, b.history, "history after truncation")
        XCTAssertEqual(a.frames, b.frames)
        XCTAssertEqual(a.position, a.history.count, "the kept answer is computed at once")
        let na = try Self.nextTurn(a), nb = try Self.nextTurn(b)
        XCTAssertEqual(na.ids, nb.ids)
        let diff = zip(na.logits, nb.logits).map { abs($0 - $1) }.max()!
        let scale = nb.logits.map { abs($0) }.max()!
        XCTAssertLessThan(diff, 1e-4 * max(scale, 1), "next turn's first logits")
        // keeping more frames than the answer had changes nothing; keeping none drops the whole answer
        XCTAssertEqual(try a.truncateAnswer(keepingFrames: 1000), 0)
        let c = Conversation(model: model, task: task)
        let spoken = try Self.answer(c, maxTokens: 12)
        let answered = c.history.count
        XCTAssertEqual(try c.truncateAnswer(keepingFrames: 0), 0)
        XCTAssertTrue(c.frames.isEmpty)
        XCTAssertEqual(c.history.count, answered - spoken.steps.count, "no position of the answer is left")
        XCTAssertEqual(c.position, c.history.count)
        XCTAssertThrowsError(try Conversation(model: model).truncateAnswer(keepingFrames: 1))
    }
}

final class FirstLogits: @unchecked Sendable {
    private let lock = NSLock()
    private var v: [Float]?
    func set(_ x: [Float]) { lock.withLock { if v == nil { v = x } } }
    var values: [Float]? { lock.withLock { v } }
}
