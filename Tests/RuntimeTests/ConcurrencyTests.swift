import Foundation
import Synchronization
import XCTest
import TestSupport
@testable import Formats
@testable import Quantize
@_spi(Tools) @testable import MiniRuntime

/// One shared model, many conversations: each conversation's streams are exactly what it gets alone, and what a
/// conversation adds is its caches.
final class ConcurrencyTests: XCTestCase {
    /// What one job produced: text ids, frames and samples.
    struct Streams: Equatable, Sendable {
        var text: [Int] = []
        var frames: [[Int]] = []
        var samples: [Float] = []
    }

    static func chatText(_ model: LFMModel) throws -> Streams {
        let c = Conversation(model: model, system: "You are a helpful assistant.")
        var s = Streams()
        for turn in ["Hello there, how are you?", "Tell me more."] {
            _ = try c.generate(user: turn, maxTokens: 12, sampling: SamplingParams(temperature: 0.9, topK: 20, seed: 5))
            {
                if case .text(let id, _) = $0 { s.text.append(id) }
            }
        }
        return s
    }

    static func asr(_ model: LFMModel) throws -> Streams {
        let clip = try WAVReader.read(fixtures + "/audio/speech.wav")
        var s = Streams()
        _ = try Transcriber(model: model).transcribe(clip) { if case .text(let id, _) = $0 { s.text.append(id) } }
        return s
    }

    static func speech(_ model: LFMModel) throws -> Streams {
        try speech(model, "Good morning, everyone.", seed: 9, maxTokens: 30)
    }

    /// Speech with samples (interleaved), sampled audio with its own seed.
    static func speech(_ model: LFMModel, _ text: String, seed: UInt64, maxTokens: Int) throws -> Streams {
        let task = TaskPreset.chat
        let c = Conversation(model: model, task: task)
        var s = Streams()
        _ = try c.generate(
            user: [.text(text)], mode: task.mode, maxTokens: maxTokens, sampling: .greedy,
            audioSampling: task.audioSampling(seed: seed), audio: .speech(decoder: nil)
        ) { ev in
            switch ev {
            case .text(let id, _): s.text.append(id)
            case .audio(let codes): s.frames.append(codes)
            case .samples(let y): s.samples += y
            case .done: break
            }
        }
        return s
    }

    /// Text chat, ASR and speech at the same time on one model give exactly the streams each gives alone.
    func testConversationsAtOnceEqualAlone() throws {
        let model = try LFMModel(
            path: try Bundles.path("tiny-b", .q8_0), options: ModelOptions(threads: 2, contextLimit: 512))
        let jobs: [@Sendable (LFMModel) throws -> Streams] = [Self.chatText, Self.asr, Self.speech]
        let alone = try jobs.map { try $0(model) }
        XCTAssertFalse(alone[0].text.isEmpty)
        XCTAssertFalse(alone[1].text.isEmpty)
        XCTAssertFalse(alone[2].frames.isEmpty)
        XCTAssertFalse(alone[2].samples.isEmpty, "speech samples from the library")
        for _ in 0..<2 {
            let results = Results(count: jobs.count)
            DispatchQueue.concurrentPerform(iterations: jobs.count) { i in
                results.set(i, Result { try jobs[i](model) })
            }
            for i in jobs.indices { XCTAssertEqual(try results.get(i), alone[i], "job \(i) concurrent vs alone") }
        }
    }

    /// A second conversation does not disturb the first one's cache (the old design reset the shared backbone).
    func testInterleavedTurnsOfTwoConversations() throws {
        let model = try LFMModel(
            path: try Bundles.path("tiny-a", .f32), options: ModelOptions(threads: 1, contextLimit: 256))
        let alone = try Self.chatText(model)
        let a = Conversation(model: model, system: "You are a helpful assistant.")
        let b = Conversation(model: model, system: "Another system prompt.")
        var got: [Int] = []
        let sampling = SamplingParams(temperature: 0.9, topK: 20, seed: 5)
        _ = try a.generate(user: "Hello there, how are you?", maxTokens: 12, sampling: sampling) {
            if case .text(let id, _) = $0 { got.append(id) }
        }
        _ = try b.generate(user: "Something else entirely.", maxTokens: 12, sampling: sampling) { _ in }
        _ = try a.generate(user: "Tell me more.", maxTokens: 12, sampling: sampling) {
            if case .text(let id, _) = $0 { got.append(id) }
        }
        XCTAssertEqual(got, alone.text)
    }

    /// A conversation's memory is its caches: the reported bytes are exactly the KV caches at the context limit,
    /// the conv carries and the depthformer's frame cache (from the config), and opening many conversations and
    /// running a turn in each grows the resident memory by no more than those caches and a small allowance each —
    /// never by the weights.
    func testConversationMemoryIsItsCaches() throws {
        let ctx = 4096
        let path = try Bundles.path("tiny-a", .f32)
        let model = try LFMModel(path: path, options: ModelOptions(threads: 1, contextLimit: ctx))
        let c = model.config.lfm, d = model.config.depthformer
        let attn = (0..<c.numHiddenLayers).filter { c.isAttention($0) }.count
        let kv = attn * 2 * ctx * c.numKeyValueHeads * c.headDim * 4
        let conv = (c.numHiddenLayers - attn) * (c.convLCache - 1) * c.hiddenSize * 4
        let depth = d.layers * 2 * model.config.codebooks * DepthformerConfig.numKVHeads * d.headDim * 4
        let first = Conversation(model: model)
        XCTAssertEqual(first.cacheBytes, kv + conv + depth)
        let weights = model.bundle.gguf.tensors.reduce(0) { $0 + $1.byteCount }
        _ = try first.generate(user: "Warm up.", maxTokens: 4, sampling: .greedy) { _ in }
        let before = MemoryMonitor.current().anon
        var held: [Conversation] = []
        let n = 16
        for i in 0..<n {
            let conv = Conversation(model: model, system: "Conversation \(i).")
            _ = try conv.generate(user: "Hello number \(i).", maxTokens: 4, sampling: .greedy) { _ in }
            held.append(conv)
        }
        let grown = MemoryMonitor.current().anon - before
        // touched KV pages: ~40 positions of each cache; allow 512 KB per conversation for the rest
        let touched = attn * 2 * 64 * c.numKeyValueHeads * c.headDim * 4 + conv + depth
        let allowance = n * (touched + 512 * 1024)
        print(
            """
            conversation caches: \(first.cacheBytes) bytes reserved at a \(ctx) context (KV \(kv), conv \(conv), \
            depthformer \(depth)); \(n) conversations grew anonymous RSS by \(grown) bytes (weights \(weights) \
            bytes)
            """
        )
        XCTAssertLessThan(grown, allowance, "\(n) conversations grew RSS by \(grown) bytes")
        XCTAssertLessThan(grown, n * weights / 4, "conversations must not copy weights")
        withExtendedLifetime(held) {}
    }
}

/// Results written by concurrent jobs, one slot each.
final class Results: Sendable {
    private let slots: Mutex<[Result<ConcurrencyTests.Streams, Error>?]>
    init(count: Int) { slots = Mutex(Array(repeating: nil, count: count)) }
    func set(_ i: Int, _ r: Result<ConcurrencyTests.Streams, Error>) { slots.withLock { $0[i] = r } }
    func get(_ i: Int) throws -> ConcurrencyTests.Streams { try slots.withLock { $0[i] }!.get() }
}
