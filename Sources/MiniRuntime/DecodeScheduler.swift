import Foundation

/// Batches the decode steps of every conversation running a turn on one model (`ModelOptions.batchDecode`): a
/// thread of its own runs rounds, and each round takes one step of every running turn with one pass over the
/// weights per component — the tied text head for the turns sampling text, the audio head (depth_linear, the
/// depthformer per codebook, the codebook tables) for those sampling a frame, then the backbone for every new
/// position. Each turn's numbers are bit-equal to running it alone (`lfm_matvec_batch`), so batching changes
/// throughput, never results. A joining turn's prompt is prefilled on this thread between two rounds (audio is
/// encoded on the caller's thread before), so one thread drives the pool instead of several taking turns job by
/// job; it then steps from the next round on and leaves when it ends. The thread exits when no turn is running.
final class DecodeScheduler: @unchecked Sendable {
    // @unchecked: `incoming`, `running` and `thread` are guarded by `lock`; a job's fields are written by the
    // round thread and read by the submitting thread only after the job's semaphore is signalled.
    private let lock = NSCondition()
    private var incoming: [Job] = []
    private var running = false
    private var roundCount = 0, stepCount = 0, widest = 0

    /// Rounds run so far, the turn-steps they held (their ratio is the mean batch) and the most in one round.
    var counts: (rounds: Int, steps: Int, widest: Int) {
        lock.lock()
        defer { lock.unlock() }
        return (roundCount, stepCount, widest)
    }

    private final class Job {
        let turn: Turn
        let cancelled: () -> Bool
        /// The submitter's (non-escaping) emit; cleared before `done` is signalled.
        var emit: ((GenerationEvent) -> Void)?
        var error: Error?
        let done = DispatchSemaphore(value: 0)
        init(turn: Turn, cancelled: @escaping () -> Bool, emit: @escaping (GenerationEvent) -> Void) {
            self.turn = turn; self.cancelled = cancelled; self.emit = emit
        }
    }

    /// A turn handed to the round thread. @unchecked: its conversation's lock stays held by the submitting thread,
    /// which waits, so only the round thread touches the turn until the job is done.
    struct Handoff: @unchecked Sendable {
        let turn: Turn
        init(_ turn: Turn) { self.turn = turn }
    }

    /// Runs a prefilled turn to its end in the rounds; `emit` is called on the round thread while this one waits.
    func run(_ handoff: Handoff, cancelled: @escaping () -> Bool, emit: (GenerationEvent) -> Void) throws {
        try withoutActuallyEscaping(emit) { e in
            let job = Job(turn: handoff.turn, cancelled: cancelled, emit: e)
            lock.lock()
            incoming.append(job)
            if !running {
                running = true
                let t = Thread { [self] in loop() }
                t.stackSize = 8 << 20
                t.name = "lfm-decode"
                t.start()
            }
            lock.signal()
            lock.unlock()
            job.done.wait()
            if let error = job.error { throw error }
        }
    }

    private func loop() {
        var active: [Job] = []
        while true {
            lock.lock()
            let joining = incoming
            incoming = []
            if active.isEmpty && joining.isEmpty {
                running = false
                lock.unlock()
                return
            }
            lock.unlock()
            // a joining turn's prompt is prefilled here, between rounds (one thread drives the pool)
            for j in joining {
                do {
                    try j.turn.prefill()
                    active.append(j)
                } catch {
                    j.error = error
                    j.emit = nil
                    j.done.signal()
                }
            }
            if active.isEmpty { continue }
            lock.lock()
            roundCount += 1
            stepCount += active.count
            widest = max(widest, active.count)
            lock.unlock()
            round(&active)
        }
    }

    /// One step of every active turn; finished ones are released.
    private func round(_ active: inout [Job]) {
        let model = active[0].turn.model  // every turn of a scheduler runs on its model
        var heads: [(Job, Turn.Head)] = []
        var events: [ObjectIdentifier: [GenerationEvent]] = [:]
        func fail(_ j: Job, _ e: Error) { j.error = j.error ?? e }
        for j in active {
            var ev: [GenerationEvent] = []
            do {
                if j.turn.state.trace != nil {
                    // traced turns step alone (the batched components do not trace)
                    if let e = try j.turn.next(cancelled: j.cancelled()) { ev = e }
                } else if let h = try j.turn.prepare(cancelled: j.cancelled(), &ev) {
                    heads.append((j, h))
                }
            } catch { fail(j, error) }
            events[ObjectIdentifier(j)] = ev
        }
        var feed: [Job] = []
        func take(_ j: Job, _ body: (inout [GenerationEvent]) throws -> Bool) {
            var ev = events[ObjectIdentifier(j)] ?? []
            do {
                if try body(&ev) { feed.append(j) } else { try j.turn.stop(&ev) }
            } catch { fail(j, error) }
            events[ObjectIdentifier(j)] = ev
        }
        let text = heads.filter { $0.1 == .text }.map(\.0)
        if !text.isEmpty {
            let logits = model.backbone.logitsBatch(text.map(\.turn.lastHidden))
            for (j, l) in zip(text, logits) {
                var l = l
                take(j) { try j.turn.takeText(&l, &$0) }
            }
        }
        let audio = heads.filter { $0.1 == .audio }.map(\.0)
        if !audio.isEmpty, let head = model.audioHead {
            let th = Date()
            let frames = head.stepBatch(audio.map(\.turn.lastHidden), states: audio.map { $0.turn.state.head! })
            let seconds = Date().timeIntervalSince(th)
            for (j, codes) in zip(audio, frames) {
                take(j) { try j.turn.takeFrame(codes, headSeconds: seconds, waitFirst: audio.count == 1, &$0) }
            }
        }
        // the backbone: one position per turn in one batch; anything else (several pending) alone
        let single = feed.filter { $0.turn.state.prompt.pendingCount == 1 }
        for j in feed where j.turn.state.prompt.pendingCount != 1 {
            do { try j.turn.feedAlone() } catch { fail(j, error) }
        }
        if !single.isEmpty {
            let h = model.backbone.hidden
            var emb = [Float](repeating: 0, count: single.count * h)
            for (b, j) in single.enumerated() {
                emb.replaceSubrange(b * h..<(b + 1) * h, with: j.turn.state.prompt.pendingEmbeddings(model))
            }
            do {
                let out = try emb.withUnsafeBufferPointer {
                    try model.backbone.stepBatch($0.baseAddress!, states: single.map { $0.turn.state.backbone })
                }
                for (j, o) in zip(single, out) { j.turn.fed(o) }
            } catch { for j in single { fail(j, error) } }
        }
        for j in active {
            for e in events[ObjectIdentifier(j)] ?? [] { j.emit?(e) }
        }
        active.removeAll { j in
            guard j.error != nil || j.turn.isFinished else { return false }
            j.emit = nil
            j.done.signal()
            return true
        }
    }
}
