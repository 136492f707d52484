import Foundation
import Synchronization

/// Decodes a turn's frames into samples on a thread of its own, so the language model samples the next frame while
/// the decoder works on the last one (their matrix products share the one worker pool, job by job). The first
/// frame of a turn is awaited, so the first audio comes as soon as a sequential decode would give it; later frames
/// overlap. The decoder stream lives on the decoder thread only.
@_spi(Tools) public final class SpeechPipeline: Sendable {
    public let kind: DecoderKind
    /// `LFM_DECODE_OVERLAP=0` decodes every frame before the next step (for side-by-side benchmarks).
    public static let overlap = ProcessInfo.processInfo.environment["LFM_DECODE_OVERLAP"] != "0"
    private struct Queue {
        var frames: [[Int]] = []
        var chunks: [[Float]] = []
        var failure: String?
        var decodeSeconds = 0.0
        var firstDecodeSeconds = 0.0
        var submitted = 0, decoded = 0
    }
    private let queue = Mutex(Queue())
    private let work = DispatchSemaphore(value: 0)
    private let progress = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    /// Checks the bundle has the decoder, then starts the decoder thread.
    public init(model: LFMModel, kind: DecoderKind?, trace: Trace?) throws {
        let k = try SpeechDecoder(model: model, kind: kind).kind  // validates availability, names the default
        self.kind = k
        let thread = Thread { [self] in self.loop(model: model, trace: trace) }
        thread.stackSize = 4 << 20
        thread.start()
    }

    private func loop(model: LFMModel, trace: Trace?) {
        defer { finished.signal() }
        let decoder: SpeechDecoder
        do { decoder = try SpeechDecoder(model: model, kind: kind) } catch {
            queue.withLock { $0.failure = "\(error)" }
            progress.signal()
            return
        }
        decoder.trace = trace
        while true {
            work.wait()
            let next: [Int]? = queue.withLock { q in
                if q.frames.isEmpty { return nil }
                return q.frames.removeFirst()
            }
            guard let codes = next else {
                // closed with nothing left: the tail of an unfinished utterance
                let tail = decoder.finish()
                queue.withLock { q in
                    if !tail.isEmpty { q.chunks.append(tail) }
                    q.decodeSeconds = decoder.decodeSeconds
                }
                return
            }
            let before = decoder.decodeSeconds
            var out: [Float] = []
            var failure: String?
            do { out = try decoder.push(codes) } catch { failure = "\(error)" }
            let spent = decoder.decodeSeconds - before
            queue.withLock { q in
                q.decoded += 1
                q.decodeSeconds = decoder.decodeSeconds
                if let failure { q.failure = failure }
                if !out.isEmpty {
                    if q.firstDecodeSeconds == 0 { q.firstDecodeSeconds = spent }
                    q.chunks.append(out)
                }
            }
            progress.signal()
        }
    }

    /// Hands a frame to the decoder; with `wait`, returns once it is decoded.
    public func submit(_ codes: [Int], wait: Bool = false) {
        let n = queue.withLock { q -> Int in
            q.frames.append(codes); q.submitted += 1
            return q.submitted
        }
        work.signal()
        if wait || !Self.overlap {
            while queue.withLock({ $0.decoded < n && $0.failure == nil }) { progress.wait() }
        }
    }

    /// Frames submitted so far.
    public var submitted: Int { queue.withLock { $0.submitted } }

    /// The chunks decoded so far (never waits).
    public func poll() throws -> [[Float]] {
        try queue.withLock { q in
            if let f = q.failure { throw RuntimeError.badInput(f) }
            let c = q.chunks
            q.chunks = []
            return c
        }
    }

    /// Waits for every submitted frame and the utterance's tail; returns the chunks not yet polled and the decoder's
    /// time (total, and the first chunk's).
    public func finish() throws -> (chunks: [[Float]], seconds: Double, first: Double) {
        work.signal()  // wakes the thread with no frame left: it decodes the tail and exits
        finished.wait()
        return try queue.withLock { q in
            if let f = q.failure { throw RuntimeError.badInput(f) }
            let c = q.chunks
            q.chunks = []
            return (c, q.decodeSeconds, q.firstDecodeSeconds)
        }
    }
}
