import Foundation
import XCTest
import TestSupport
@testable import Formats
@testable import Quantize
@_spi(Tools) @testable import MiniRuntime

/// Batched decoding (`ModelOptions.batchDecode`): the decode steps of concurrent turns run as one pass over the
/// weights, and every stream is bit-equal to what it gives alone.
final class BatchDecodeTests: XCTestCase {
    typealias Streams = ConcurrencyTests.Streams

    static func speech(_ model: LFMModel, _ text: String, seed: UInt64) throws -> Streams {
        try ConcurrencyTests.speech(model, text, seed: seed, maxTokens: 20)
    }

    /// Four speech streams, a sampled text chat and ASR at once on a batching model equal each job alone on a
    /// model that does not batch, for 8-bit and K-quant weights (every type steps through its own matvec kernel either
    /// way); and the rounds really held several
    /// turns' steps.
    func testBatchedStreamsEqualAlone() throws {
        for preset in [Preset.q8_0, .q4_k_m] {
            let path = try Bundles.path("tiny-b", preset)
            let plain = try LFMModel(path: path, options: ModelOptions(threads: 2, contextLimit: 512))
            let batching = try LFMModel(
                path: path, options: ModelOptions(threads: 2, contextLimit: 512, batchDecode: true))
            let jobs: [@Sendable (LFMModel) throws -> Streams] = [
                { try Self.speech($0, "Good morning, everyone.", seed: 1) },
                { try Self.speech($0, "What is the weather like?", seed: 2) },
                { try Self.speech($0, "Tell me a story about a cat.", seed: 3) },
                { try Self.speech($0, "Good morning, everyone.", seed: 4) },
                ConcurrencyTests.chatText, ConcurrencyTests.asr,
            ]
            let alone = try jobs.map { try $0(plain) }
            for s in alone[0..<4] { XCTAssertFalse(s.frames.isEmpty || s.samples.isEmpty, "\(preset): speech") }
            XCTAssertNotEqual(alone[0].frames, alone[3].frames, "\(preset): seeds give different frames")
            // a thread per job, so that all of them run at once
            let results = Results(count: jobs.count)
            let group = DispatchGroup()
            for i in jobs.indices {
                group.enter()
                Thread {
                    results.set(i, Result { try jobs[i](batching) })
                    group.leave()
                }.start()
            }
            group.wait()
            for i in jobs.indices { XCTAssertEqual(try results.get(i), alone[i], "\(preset): job \(i) batched") }
            let (rounds, steps, widest) = batching.scheduler!.counts
            XCTAssertGreaterThanOrEqual(widest, 3, "\(preset): at most \(widest) turns stepped together")
            XCTAssertLessThan(rounds, steps, "\(preset): \(steps) steps in \(rounds) rounds")
            print("batch decode \(preset): \(steps) turn-steps in \(rounds) rounds, up to \(widest) in one")
        }
    }

    /// The batched backbone step and audio head equal stepping each state alone, bit for bit.
    func testBatchedComponentsEqualAlone() throws {
        let model = try LFMModel(path: try Bundles.path("tiny-b", .q4_0), options: ModelOptions(threads: 2))
        let bb = model.backbone, head = model.audioHead!, h = bb.hidden
        let B = 3
        let alone = (0..<B).map { _ in bb.makeState() }, batched = (0..<B).map { _ in bb.makeState() }
        // different histories first (lengths 3, 5, 7), then one position each
        for b in 0..<B {
            let ids = (0..<(3 + 2 * b)).map { 100 + 7 * $0 + b }
            _ = try bb.forward(tokens: ids, state: alone[b])
            _ = try bb.forward(tokens: ids, state: batched[b])
        }
        var emb = [Float](repeating: 0, count: B * h)
        emb.withUnsafeMutableBufferPointer { e in for b in 0..<B { bb.embedding(40 + b, into: e.baseAddress! + b * h) }
        }
        let out = try emb.withUnsafeBufferPointer { try bb.stepBatch($0.baseAddress!, states: batched) }
        for b in 0..<B {
            XCTAssertEqual(out[b], try bb.forward(tokens: [40 + b], state: alone[b]), "backbone row \(b)")
            XCTAssertEqual(batched[b].position, alone[b].position)
        }
        XCTAssertEqual(bb.logitsBatch(out), out.map { bb.logits($0) })
        let hs = (0..<B).map { head.makeState(sampling: SamplingParams(temperature: 0.8, topK: 4, seed: UInt64($0))) }
        let ha = (0..<B).map { head.makeState(sampling: SamplingParams(temperature: 0.8, topK: 4, seed: UInt64($0))) }
        for _ in 0..<2 {
            XCTAssertEqual(head.stepBatch(out, states: hs), (0..<B).map { head.step(out[$0], state: ha[$0]) })
        }
    }
}
