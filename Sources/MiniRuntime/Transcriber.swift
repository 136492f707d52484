import Foundation
import Synchronization

/// Events of a transcription.
public enum TranscriptEvent: Sendable {
    /// A window of the recording begins (seconds from the start of the input).
    case segment(index: Int, start: Double, end: Double)
    /// A transcript token of the current window and its text.
    case text(id: Int, piece: String)
    /// A window is finished.
    case segmentDone(index: Int, stats: GenerationStats)
}

public struct TranscriptionOptions: Sendable {
    /// Longest window fed to the model at once, in seconds; longer recordings are split at low-energy points.
    public var maxWindowSeconds: Double = 30
    public var system: String = ChatFormat.System.asr
    /// Generation steps per window.
    public var maxTokens: Int = 512
    public var sampling: SamplingParams = .greedy
    public init() {}
}

public struct TranscriptionStats: Sendable {
    public var audioSeconds = 0.0
    public var wallSeconds = 0.0
    public var windows = 0
    public var generatedTokens = 0
    public var audioPositions = 0
    public var melSeconds = 0.0
    public var encoderSeconds = 0.0
    public var prefillSeconds = 0.0
    public var decodeSeconds = 0.0
    public var firstTokenSeconds = 0.0
    public var stopReasons: [StopReason] = []
    /// Audio seconds per wall second.
    public var realTimeFactor: Double { wallSeconds > 0 ? audioSeconds / wallSeconds : 0 }
}

/// ASR in the reference's way (system "Perform ASR.", the clip as the user turn, sequential mode, text until
/// <|im_end|>; an <|audio_start|> also ends the transcript). Recordings longer than the window are split at
/// low-energy points and transcribed window after window, each as its own conversation.
public final class Transcriber: Sendable {
    public let model: LFMModel
    private struct Running {
        var conversation: Conversation?
        var cancelled = false
    }
    private let running = Mutex(Running())

    public init(model: LFMModel) throws {
        guard model.audioEncoder != nil else {
            throw RuntimeError.badInput(
                "\(model.bundle.gguf.path): the bundle has no audio encoder (conformer); ASR is not possible")
        }
        self.model = model
    }

    public func cancel() {
        let c = running.withLock { r in
            r.cancelled = true
            return r.conversation
        }
        c?.cancel()
    }
    var isCancelled: Bool { running.withLock { $0.cancelled } }

    /// Window boundaries (sample indices) for `samples` at `rate`: one window when the clip fits; otherwise each cut
    /// is placed at the quietest 20 ms frame (smoothed over 100 ms) in the last half of the allowed window.
    public static func windows(_ samples: [Float], rate: Int, maxSeconds: Double) -> [Range<Int>] {
        let n = samples.count
        let maxLen = max(1, Int(maxSeconds * Double(rate)))
        if n <= maxLen { return [0..<n] }
        let hop = max(1, rate / 50)  // 20 ms frames
        let frames = (n + hop - 1) / hop
        var energy = [Double](repeating: 0, count: frames)
        for f in 0..<frames {
            var s = 0.0
            let b = f * hop, e = min(n, b + hop)
            for i in b..<e { s += Double(samples[i]) * Double(samples[i]) }
            energy[f] = s / Double(max(e - b, 1))
        }
        // 100 ms moving average (5 frames, centred)
        var smooth = [Double](repeating: 0, count: frames)
        for f in 0..<frames {
            let a = max(0, f - 2), z = min(frames - 1, f + 2)
            smooth[f] = energy[a...z].reduce(0, +) / Double(z - a + 1)
        }
        var out: [Range<Int>] = []
        var start = 0
        while n - start > maxLen {
            let lo = (start + maxLen / 2) / hop + 1, hi = (start + maxLen) / hop
            var best = hi, bestE = Double.infinity
            // ties: the later cut
            if lo <= hi { for f in lo...hi where smooth[f] <= bestE { bestE = smooth[f]; best = f } }
            let cut = min(max(best * hop, start + 1), start + maxLen)
            out.append(start..<cut)
            start = cut
        }
        out.append(start..<n)
        return out
    }

    /// Transcribes a clip (any rate, mono); `emit` receives segment and text events as they are produced.
    public func transcribe(
        _ clip: AudioClip, options: TranscriptionOptions = TranscriptionOptions(),
        emit: (TranscriptEvent) -> Void
    ) throws -> TranscriptionStats {
        running.withLock { $0.cancelled = false }
        let t0 = Date()
        var st = TranscriptionStats()
        st.audioSeconds = clip.seconds
        let rate = clip.sampleRate
        let ws = Self.windows(clip.samples, rate: rate, maxSeconds: options.maxWindowSeconds)
        for (i, w) in ws.enumerated() {
            if isCancelled { st.stopReasons.append(.cancelled); break }
            emit(
                .segment(index: i, start: Double(w.lowerBound) / Double(rate), end: Double(w.upperBound) / Double(rate))
            )
            let s = Conversation(model: model, system: options.system)
            running.withLock { $0.conversation = s }
            let part = AudioClip(samples: Array(clip.samples[w]), sampleRate: rate, channels: clip.channels)
            let tw = Date()
            let gs = try s.generate(user: [.audio(part)], maxTokens: options.maxTokens, sampling: options.sampling) {
                ev in
                guard case .text(let id, let piece) = ev else { return }
                if id == model.tokens.imEnd || id == model.tokens.audioStart { return }
                emit(.text(id: id, piece: piece))
            }
            if i == 0 { st.firstTokenSeconds = tw.timeIntervalSince(t0) + gs.timeToFirstToken }
            st.windows += 1
            st.generatedTokens += gs.generatedTokens
            st.audioPositions += gs.audioPositions
            st.melSeconds += gs.melSeconds; st.encoderSeconds += gs.encoderSeconds
            st.prefillSeconds += gs.prefillSeconds; st.decodeSeconds += gs.decodeSeconds
            st.stopReasons.append(gs.stopReason)
            emit(.segmentDone(index: i, stats: gs))
            if gs.stopReason == .cancelled { break }
        }
        running.withLock { $0.conversation = nil }
        st.wallSeconds = Date().timeIntervalSince(t0)
        return st
    }
}
