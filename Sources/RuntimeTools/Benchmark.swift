import Foundation
import Synchronization
import CKernels
import Formats
@_spi(Tools) import MiniRuntime

/// A raw pointer handed to the pool's threads (each reads its own range).
struct SharedPointer<T>: @unchecked Sendable {
    let p: UnsafeMutablePointer<T>
}

/// Measurements for benchmarks (not timed tests): llama-bench-style prefill/decode throughput and the machine's
/// read bandwidth, so throughput can be put against the memory-bandwidth bound.
public enum Benchmark {
    public struct Result: Sendable {
        public var prefillTokensPerSecond: [Double] = []
        public var decodeTokensPerSecond: [Double] = []
        public var weightBytesPerToken = 0
    }

    /// `pp`: prefill of `promptTokens` random tokens (as llama-bench's ppN); `tg`: `genTokens` single-token
    /// decode steps after a 1-token prompt (as tgN). Each repeated `repeats` times on a fresh cache.
    public static func run(_ model: LFMModel, promptTokens: Int, genTokens: Int, repeats: Int) throws -> Result {
        var r = Result()
        let bb = model.backbone
        var rng = SeededRandom(seed: 42)
        r.weightBytesPerToken = model.bundle.gguf.tensors.filter {
            $0.name.hasPrefix(BundleNames.backbonePrefix)
        }.reduce(0) { $0 + $1.byteCount }
        for _ in 0..<repeats {
            if promptTokens > 0 {
                let st = bb.makeState()
                let ids = (0..<promptTokens).map { _ in Int(rng.next() % UInt64(bb.vocab)) }
                let t0 = Date()
                _ = bb.logits(try bb.forward(tokens: ids, state: st))
                r.prefillTokensPerSecond.append(Double(promptTokens) / Date().timeIntervalSince(t0))
            }
            if genTokens > 0 {
                let st = bb.makeState()
                var id = 1
                let t0 = Date()
                for _ in 0..<genTokens {
                    let logits = bb.logits(try bb.forward(tokens: [id], state: st))
                    id = logits.withUnsafeBufferPointer { Sampler.argmax($0) }
                }
                r.decodeTokensPerSecond.append(Double(genTokens) / Date().timeIntervalSince(t0))
            }
        }
        return r
    }

    public struct AudioResult: Sendable {
        public var audioSeconds = 0.0
        public var positions = 0
        /// Per run: resample + mel, conformer + adapter, backbone prefill of the ASR prompt, `tokens` decode steps.
        public var melSeconds: [Double] = []
        public var encoderSeconds: [Double] = []
        public var prefillSeconds: [Double] = []
        public var decodeSeconds: [Double] = []
        public var totalSeconds: [Double] = []
        public var promptPositions = 0
    }

    /// ASR as `lfm-run asr` runs it, with a fixed transcript length: the clip is encoded, the "Perform ASR." prompt
    /// prefilled, then exactly `tokens` greedy steps are decoded whatever they are (a random model's stream stops at
    /// arbitrary points; a real transcript of 30 s of speech is ~100 tokens). Repeated `repeats` times.
    public static func asr(_ model: LFMModel, clip: AudioClip, tokens: Int, repeats: Int) throws -> AudioResult {
        guard let enc = model.audioEncoder else {
            throw RuntimeError.badInput("\(model.bundle.gguf.path): no audio encoder")
        }
        var r = AudioResult()
        r.audioSeconds = clip.seconds
        let bb = model.backbone
        for _ in 0..<repeats {
            let t0 = Date()
            let e = try enc.embed(clip)  // the encode path a conversation runs, with its own timings
            let t2 = Date()
            r.positions = e.count
            var prompt = PromptBuilder(tokenizer: model.tokenizer, system: TaskPreset.asr.system)
            prompt.userTurn([.audio(clip)], encoded: [e])
            r.promptPositions = prompt.pendingCount
            let st = bb.makeState()
            let emb = prompt.pendingEmbeddings(model)
            var last = try emb.withUnsafeBufferPointer {
                try bb.step(.init(embeddings: $0.baseAddress!, count: prompt.pendingCount), state: st)
            }
            let t3 = Date()
            for _ in 0..<tokens {
                let id = bb.logits(last).withUnsafeBufferPointer { Sampler.argmax($0) }
                last = try bb.forward(tokens: [id], state: st)
            }
            let t4 = Date()
            r.melSeconds.append(e.stats.resampleSeconds + e.stats.melSeconds)
            r.encoderSeconds.append(e.stats.encoderSeconds + e.stats.adapterSeconds)
            r.prefillSeconds.append(t3.timeIntervalSince(t2)); r.decodeSeconds.append(t4.timeIntervalSince(t3))
            r.totalSeconds.append(t4.timeIntervalSince(t0))
        }
        return r
    }

    public struct SpeechResult: Sendable {
        public var frames = 0
        /// Per run, seconds: LM steps, depthformer (audio head), decoder; and the total wall time of the audio loop.
        public var lmSeconds: [Double] = []
        public var headSeconds: [Double] = []
        public var decoderSeconds: [Double] = []
        public var totalSeconds: [Double] = []
        public var audioSeconds = 0.0
    }

    /// TTS speed with a fixed number of frames: the TTS prompt is prefilled, <|audio_start|> fed, then `frames`
    /// frames are sampled (audio temperature 0.8, top-k 64 as the reference's TTS) and decoded as they come, whatever
    /// a random model's codebook 0 says (an end-of-audio frame is decoded as silence is not: it is skipped). Frames go
    /// to the conversations' speech pipeline, so decoding overlaps the next frame's sampling as in `Conversation`
    /// (`LFM_DECODE_OVERLAP=0` decodes inline instead, for side-by-side runs); `decoderSeconds` is then the decoder
    /// thread's own time, and the total is the wall time until the last sample.
    public static func speech(
        _ model: LFMModel, frames: Int, decoder kind: DecoderKind?, repeats: Int
    ) throws -> SpeechResult {
        guard let head = model.audioHead else {
            throw RuntimeError.badInput("\(model.bundle.gguf.path): no audio head")
        }
        _ = try SpeechDecoder(model: model, kind: kind)  // the decoder exists
        var r = SpeechResult()
        r.frames = frames
        let bb = model.backbone, h = bb.hidden, eoa = model.tokens.endOfAudio
        let task = TaskPreset.tts(.ukFemale)
        var prompt = PromptBuilder(tokenizer: model.tokenizer, system: task.system)
        prompt.userTurn([.text("The quick brown fox jumps over the lazy dog, again and again.")], encoded: [nil])
        prompt.text([model.tokens.audioStart])
        let promptEmbeddings = prompt.pendingEmbeddings(model)
        var emb = [Float](repeating: 0, count: h)
        for rep in 0..<repeats {
            let pipeline = try SpeechPipeline(model: model, kind: kind, trace: nil)
            let st = bb.makeState()
            var last = try promptEmbeddings.withUnsafeBufferPointer {
                try bb.step(.init(embeddings: $0.baseAddress!, count: prompt.pendingCount), state: st)
            }
            let hs = head.makeState(sampling: task.audioSampling(seed: UInt64(rep)))
            var lm = 0.0, hd = 0.0, samples = 0
            let t0 = Date()
            for _ in 0..<frames {
                var t = Date()
                var codes = head.step(last, state: hs)
                hd += Date().timeIntervalSince(t)
                if codes.contains(where: { $0 >= eoa }) { codes = codes.map { $0 >= eoa ? 0 : $0 } }
                pipeline.submit(codes, wait: pipeline.submitted == 0)
                samples += try pipeline.poll().reduce(0) { $0 + $1.count }
                t = Date()
                emb.withUnsafeMutableBufferPointer { head.frameEmbedding(codes, into: $0.baseAddress!) }
                last = try emb.withUnsafeBufferPointer {
                    try bb.step(.init(embeddings: $0.baseAddress!, count: 1), state: st)
                }
                lm += Date().timeIntervalSince(t)
            }
            let (rest, dc, _) = try pipeline.finish()
            samples += rest.reduce(0) { $0 + $1.count }
            r.totalSeconds.append(Date().timeIntervalSince(t0))
            r.lmSeconds.append(lm); r.headSeconds.append(hd); r.decoderSeconds.append(dc)
            r.audioSeconds = Double(samples) / Double(SpeechDecoder.sampleRate)
        }
        return r
    }

    /// Concurrent speech streams: `streams` conversations each run a chat turn in the interleaved mode (text and
    /// audio frames, the reference's system prompt) for `steps` steps at once, with or without decoded samples.
    /// Throughput is taken over the window in which every stream is generating frames (prefills excluded).
    public struct StreamsResult: Sendable {
        /// Frames over all streams inside the window, and the window's length.
        public var frames = 0
        public var seconds = 0.0
        /// Each stream's time to its first frame, from the common start.
        public var firstFrameSeconds: [Double] = []
        public var framesPerSecond: Double { seconds > 0 ? Double(frames) / seconds : 0 }
    }

    public static func streams(_ model: LFMModel, streams n: Int, steps: Int, speech: Bool) throws -> StreamsResult {
        let task = TaskPreset.chat
        let questions = [
            "Tell me about the history of the bicycle.", "What should I cook tonight?",
            "Explain how a rainbow forms.", "Describe your favourite city.",
        ]
        let results = Mutex<[Swift.Result<[Date], Error>?]>(Array(repeating: nil, count: n))
        // the system prompts are prefilled first (a server's prefix cache): each turn prefills its question only
        let conversations = try (0..<n).map { _ in
            let c = Conversation(model: model, task: task)
            try c.prefill()
            return c
        }
        let t0 = Date()
        // a thread per stream (concurrentPerform would run only as many at once as there are cores)
        let group = DispatchGroup()
        for i in 0..<n {
            group.enter()
            let c = conversations[i]
            let t = Thread {
                defer { group.leave() }
                var times: [Date] = []
                let r = Swift.Result {
                    _ = try c.generate(
                        user: [.text(questions[i % questions.count])], mode: task.mode, maxTokens: steps,
                        sampling: .greedy, audioSampling: task.audioSampling(seed: UInt64(i)),
                        audio: speech ? .speech(decoder: nil) : .codes
                    ) { if case .audio = $0 { times.append(Date()) } }
                    return times
                }
                results.withLock { $0[i] = r }
            }
            t.stackSize = 8 << 20
            t.start()
        }
        group.wait()
        let frameTimes = try results.withLock { $0 }.map { try $0!.get() }
        var out = StreamsResult()
        guard frameTimes.allSatisfy({ $0.count >= 2 }) else { return out }
        let start = frameTimes.map { $0.first! }.max()!, end = frameTimes.map { $0.last! }.min()!
        out.firstFrameSeconds = frameTimes.map { $0.first!.timeIntervalSince(t0) }
        guard end > start else { return out }
        // frames strictly after the window opens (the opening frame ends the interval before it)
        out.frames = frameTimes.reduce(0) { $0 + $1.filter { $0 > start && $0 <= end }.count }
        out.seconds = end.timeIntervalSince(start)
        return out
    }

    /// Read bandwidth in bytes/s over a `bytes`-sized buffer with `threads` threads (median of `repeats`).
    public static func readBandwidth(bytes: Int = 1 << 30, threads: Int, repeats: Int = 5) -> Double {
        let n = bytes / 4
        let buf = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { buf.deallocate() }
        for i in stride(from: 0, to: n, by: 1024) { buf[i] = 1 }  // touch every page
        buf.initialize(repeating: 1, count: n)
        let pool = WorkerPool.shared(threads: threads)
        let p = SharedPointer(p: buf)
        var rates: [Double] = []
        for _ in 0..<repeats {
            let t0 = Date()
            pool.parallelFor(n, align: 4096) { b, e in _ = lfm_sum_f32(p.p + b, e - b) }
            rates.append(Double(bytes) / Date().timeIntervalSince(t0))
        }
        return rates.sorted()[rates.count / 2]
    }
}
