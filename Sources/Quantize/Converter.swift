import Foundation
import Formats

/// Progress of a conversion, reported after every chunk.
public struct ConvertProgress: Sendable {
    public var tensorsDone: Int
    public var tensorsTotal: Int
    public var bytesDone: Int
    public var bytesTotal: Int
}

public struct ConvertOptions: Sendable {
    public var threads: Int
    public var overwrite: Bool
    public var converterVersion: String
    public init(
        threads: Int = ProcessInfo.processInfo.activeProcessorCount, overwrite: Bool = false,
        converterVersion: String = LFMVersion.converter
    ) {
        self.threads = max(1, threads); self.overwrite = overwrite; self.converterVersion = converterVersion
    }
}

public enum LFMVersion {
    public static let converter = "0.1.0"
}

public struct ConvertResult: Sendable {
    public var output: String
    public var bytes: Int
    public var seconds: Double
    public var crc32: [UInt32]
    /// Phase timings in seconds: tensors (convert + checksum + write), waiting for source hashes, fsync + rename.
    public var phases: [String: Double] = [:]
}

/// Writes a plan as one GGUF bundle: streaming, one chunk of rows at a time from the mapped input to the
/// output, on `threads` workers; into a temporary file that is renamed only when complete.
public enum Converter {
    /// Elements per work chunk (4 MB of float32 scratch per worker).
    public static let chunkElements = 1 << 20

    public static func metadata(
        for plan: ConversionPlan, checkpoint ckpt: Checkpoint, options: ConvertOptions,
        sources: [(String, String, Int)], crcs: [UInt32]
    ) -> [(String, GGUFValue)] {
        var m: [(String, GGUFValue)] = []
        m.append((BundleKeys.architecture, .string(BundleKeys.architectureValue)))
        m.append((BundleKeys.alignment, .uint32(UInt32(GGUF.defaultAlignment))))
        m.append((BundleKeys.name, .string(checkpointName(ckpt.root))))
        let ftype = plan.recipe.preset.llamaFileType
        m.append((BundleKeys.fileType, .uint32(ftype)))
        m.append((BundleKeys.quantizationVersion, .uint32(2)))
        m.append((BundleKeys.formatVersion, .uint32(BundleKeys.currentFormatVersion)))
        m.append((BundleKeys.converterVersion, .string("lfm-convert \(options.converterVersion)")))
        m.append((BundleKeys.components, .strings(plan.components.map(\.rawValue))))
        m.append((BundleKeys.config, .string(String(decoding: ckpt.configData, as: UTF8.self))))
        if let mimi = ckpt.mimi {
            let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys]
            let json = (try? enc.encode(mimi.config)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
            m.append(
                (BundleKeys.mimiConfig, .string(mimi.configData.map { String(decoding: $0, as: UTF8.self) } ?? json)))
            m.append(
                (
                    BundleKeys.mimiConfigSource,
                    .string(mimi.configData == nil ? "reference get_mimi defaults" : CheckpointFiles.mimiConfig)
                ))
        }
        if let det = ckpt.detokenizer {
            m.append((BundleKeys.detokenizerConfig, .string(String(decoding: det.configData, as: UTF8.self))))
        }
        m.append((BundleKeys.hfTokenizer, .string(String(decoding: ckpt.tokenizerData, as: UTF8.self))))
        if let tc = ckpt.tokenizerConfigData {
            m.append((BundleKeys.hfTokenizerConfig, .string(String(decoding: tc, as: UTF8.self))))
        }
        if let t = ckpt.chatTemplate { m.append((BundleKeys.chatTemplate, .string(t))) }
        m.append((BundleKeys.bos, .uint32(1)))
        m.append((BundleKeys.eos, .uint32(7)))
        m.append((BundleKeys.pad, .uint32(UInt32(ckpt.specialTokenIds["<|pad|>"] ?? 0))))
        for (name, id) in SpecialTokens.required { m.append((SpecialTokens.key(name), .uint32(UInt32(id)))) }
        m.append((BundleKeys.endOfAudio, .uint32(UInt32(SpecialTokens.endOfAudio))))
        m.append((BundleKeys.preset, .string(plan.recipe.preset.rawValue)))
        m.append((BundleKeys.overrides, .strings(plan.recipe.overrides.map(\.description))))
        m.append((BundleKeys.recipe, .string(plan.recipe.json)))
        m.append(contentsOf: plan.extraMetadata)
        m.append((BundleKeys.sourceFiles, .strings(sources.map(\.0))))
        m.append((BundleKeys.sourceSHA256, .strings(sources.map(\.1))))
        m.append((BundleKeys.sourceBytes, .uint64s(sources.map { UInt64($0.2) })))
        if let base = ckpt.baseRoot {
            m.append((BundleKeys.sourceOrigins, .strings(ckpt.sourceFiles.map { ckpt.origin(of: $0).rawValue })))
            m.append((BundleKeys.sourceBase, .string(checkpointName(base))))
        }
        if !ckpt.ignoredFiles.isEmpty { m.append((BundleKeys.ignoredFiles, .strings(ckpt.ignoredFiles))) }
        m.append((BundleKeys.dropped, .strings(plan.dropped.map(\.name))))
        if !plan.ties.isEmpty {
            m.append((BundleKeys.tiedNames, .strings(plan.ties.map(\.derived))))
            m.append((BundleKeys.tiedTargets, .strings(plan.ties.map(\.stored))))
        }
        m.append((BundleKeys.tensorCRC32, .uint32s(crcs)))
        m.append((BundleKeys.headerCRC32, .uint32(0)))  // sealed by HeaderChecksum when the header is written
        return m
    }

    /// A readable model name from a checkpoint folder (the repo name for hub-cache snapshots).
    public static func checkpointName(_ root: String) -> String {
        let parts = root.split(separator: "/")
        if let i = parts.lastIndex(where: { $0.hasPrefix("models--") }) {
            return parts[i].dropFirst("models--".count).replacingOccurrences(of: "--", with: "/")
        }
        return parts.last.map(String.init) ?? "lfm2-audio"
    }

    public static func convert(
        _ ckpt: Checkpoint, plan: ConversionPlan, to destination: String, options: ConvertOptions,
        progress: (@Sendable (ConvertProgress) -> Void)? = nil,
        isCancelled: @escaping @Sendable () -> Bool = { false }
    ) throws -> ConvertResult {
        try write(
            plan.tensors, to: destination, sourceFiles: ckpt.sourceFiles,
            names: ckpt.sourceFiles.map(ckpt.relativeName), root: ckpt.root, options: options,
            metadata: { sources, crcs in
                metadata(for: plan, checkpoint: ckpt, options: options, sources: sources, crcs: crcs)
            },
            progress: progress, isCancelled: isCancelled)
    }

    /// Writes tensors and metadata as one GGUF file. `metadata` receives the source files' (name, sha256,
    /// bytes) and the tensors' CRC32s; it is called once with placeholders of the same size to lay out
    /// the header, so the data can be written before the checksums are known.
    public static func write(
        _ tensors: [PlannedTensor], to destination: String, sourceFiles files: [String], names: [String]? = nil,
        root: String,
        options: ConvertOptions, alignment: Int = GGUF.defaultAlignment,
        metadata: ([(String, String, Int)], [UInt32]) -> [(String, GGUFValue)],
        progress: (@Sendable (ConvertProgress) -> Void)? = nil,
        isCancelled: @escaping @Sendable () -> Bool = { false }
    ) throws -> ConvertResult {
        let start = Date()
        var infos = tensors.map { GGUFTensorInfo(name: $0.name, dims: $0.shape.reversed(), type: $0.type) }
        let dataSize = GGUF.layout(&infos, alignment: alignment)
        let rootPrefix = root.hasSuffix("/") ? root : root + "/"
        let rel = names ?? files.map { $0.hasPrefix(rootPrefix) ? String($0.dropFirst(rootPrefix.count)) : $0 }
        let placeholderSources = rel.map { ($0, String(repeating: "0", count: 64), 0) }
        let placeholder = GGUF.header(
            metadata: metadata(placeholderSources, Array(repeating: 0, count: infos.count)), tensors: infos)
        let dataStart = (placeholder.count + alignment - 1) / alignment * alignment
        let total = dataStart + dataSize

        let out = try AtomicFile(destination: destination, overwrite: options.overwrite)
        do {
            try out.reserve(total)
            // Source hashes on their own thread, alongside the tensor work.
            let hashes = HashJob(files: files)
            let hashThread = Thread { hashes.run() }
            hashThread.start()

            let t0 = Date()
            let crcs = try writeTensors(
                tensors, infos: infos, dataStart: dataStart, out: out, threads: options.threads,
                progress: progress, isCancelled: isCancelled)
            let t1 = Date()
            let sources = try hashes.wait()
            let t2 = Date()
            let srcList = zip(rel, sources).map { ($0, $1.0, $1.1) }
            var header = GGUF.header(metadata: metadata(srcList, crcs), tensors: infos)
            precondition(header.count == placeholder.count, "header size changed between layout and write")
            HeaderChecksum.seal(&header)
            header.append(Data(count: dataStart - header.count))
            try out.write(header, at: 0)
            if isCancelled() { throw QuantizeError.cancelled }
            try out.commit()
            let t3 = Date()
            return ConvertResult(
                output: destination, bytes: total, seconds: t3.timeIntervalSince(start), crc32: crcs,
                phases: [
                    "tensors": t1.timeIntervalSince(t0), "hash_wait": t2.timeIntervalSince(t1),
                    "commit": t3.timeIntervalSince(t2), "total": t3.timeIntervalSince(start),
                ])
        } catch {
            out.abandon()
            throw error
        }
    }

    struct Chunk { var tensor: Int; var start: Int; var count: Int }

    static func writeTensors(
        _ tensors: [PlannedTensor], infos: [GGUFTensorInfo], dataStart: Int, out: AtomicFile, threads: Int,
        progress: (@Sendable (ConvertProgress) -> Void)?, isCancelled: @escaping @Sendable () -> Bool
    ) throws -> [UInt32] {
        var chunks: [Chunk] = []
        var firstChunk: [Int] = []
        for (i, t) in tensors.enumerated() {
            firstChunk.append(chunks.count)
            let n = t.elementCount
            if case .derived = t.source {
                chunks.append(Chunk(tensor: i, start: 0, count: n)); continue
            }
            // weighted quantization works on whole rows of the importance width
            let row = max(t.importance?.count ?? t.shape.last ?? 1, 1)
            let rowsPerChunk = max(1, chunkElements / row)
            var s = 0
            while s < n {
                let c = min(rowsPerChunk * row, n - s)
                chunks.append(Chunk(tensor: i, start: s, count: c))
                s += c
            }
        }
        firstChunk.append(chunks.count)
        let state = WorkState(
            chunks: chunks.count, tensors: tensors.count, firstChunk: firstChunk,
            totalBytes: tensors.reduce(0) { $0 + $1.byteCount })
        let maxChunk = chunks.map(\.count).max() ?? 0
        let chunkList = chunks
        let workers = min(threads, max(chunks.count, 1))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(maxChunk, 1))
            let outBuf = UnsafeMutableRawPointer.allocate(byteCount: max(maxChunk * 4, 64), alignment: 64)
            defer { scratch.deallocate(); outBuf.deallocate() }
            while let ci = state.next() {
                if isCancelled() { state.fail(QuantizeError.cancelled); return }
                let c = chunkList[ci]
                let t = tensors[c.tensor]
                let offset = dataStart + infos[c.tensor].offset + t.type.byteCount(elements: c.start)
                let nbytes = t.type.byteCount(elements: c.count)
                do {
                    var crc: UInt32
                    switch t.source {
                    case .stored(let src) where Codec.identicalType(src.dtype) == t.type:
                        let sz = src.dtype.byteSize
                        let bytes = UnsafeRawBufferPointer(
                            rebasing: src.bytes[(c.start * sz)..<((c.start + c.count) * sz)])
                        crc = Hashing.crc32(bytes)
                        try out.write(bytes, at: offset)
                    case .stored(let src):
                        Codec.readFloats(src, start: c.start, count: c.count, into: scratch)
                        if let w = t.importance {
                            Codec.encode(scratch, count: c.count, as: t.type, weights: w, into: outBuf)
                        } else {
                            Codec.encode(scratch, count: c.count, as: t.type, into: outBuf)
                        }
                        let b = UnsafeRawBufferPointer(start: outBuf, count: nbytes)
                        crc = Hashing.crc32(b)
                        try out.write(b, at: offset)
                    case .derived(_, let compute):
                        let v = compute()
                        precondition(
                            v.count == t.elementCount,
                            "derived tensor \(t.name) has \(v.count) values, expected \(t.elementCount)")
                        v.withUnsafeBufferPointer {
                            if let w = t.importance {
                                Codec.encode($0.baseAddress!, count: c.count, as: t.type, weights: w, into: outBuf)
                            } else {
                                Codec.encode($0.baseAddress!, count: c.count, as: t.type, into: outBuf)
                            }
                        }
                        let b = UnsafeRawBufferPointer(start: outBuf, count: nbytes)
                        crc = Hashing.crc32(b)
                        try out.write(b, at: offset)
                    }
                    if let p = state.finish(chunk: ci, tensor: c.tensor, crc: crc, bytes: nbytes) { progress?(p) }
                } catch {
                    state.fail(error); return
                }
            }
        }
        if let e = state.error { throw e }
        // Combine chunk CRCs in order.
        var crcs: [UInt32] = []
        for (i, t) in tensors.enumerated() {
            var crc: UInt32 = 0
            for ci in firstChunk[i]..<firstChunk[i + 1] {
                let c = chunks[ci]
                crc =
                    ci == firstChunk[i]
                    ? state.crcs[ci]
                    : Hashing.crc32Combine(crc, state.crcs[ci], lengthB: t.type.byteCount(elements: c.count))
            }
            crcs.append(crc)
        }
        return crcs
    }

    final class WorkState: @unchecked Sendable {
        let lock = NSLock()
        var nextChunk = 0
        let nChunks: Int
        var crcs: [UInt32]
        var remaining: [Int]
        var tensorsDone = 0
        let nTensors: Int
        var bytesDone = 0
        let totalBytes: Int
        var error: Error?
        init(chunks: Int, tensors: Int, firstChunk: [Int], totalBytes: Int) {
            nChunks = chunks; nTensors = tensors; self.totalBytes = totalBytes
            crcs = Array(repeating: 0, count: chunks)
            remaining = (0..<tensors).map { firstChunk[$0 + 1] - firstChunk[$0] }
        }
        func next() -> Int? {
            lock.lock(); defer { lock.unlock() }
            guard error == nil, nextChunk < nChunks else { return nil }
            nextChunk += 1
            return nextChunk - 1
        }
        func finish(chunk: Int, tensor: Int, crc: UInt32, bytes: Int) -> ConvertProgress? {
            lock.lock(); defer { lock.unlock() }
            crcs[chunk] = crc
            bytesDone += bytes
            remaining[tensor] -= 1
            if remaining[tensor] == 0 { tensorsDone += 1 }
            return ConvertProgress(
                tensorsDone: tensorsDone, tensorsTotal: nTensors, bytesDone: bytesDone, bytesTotal: totalBytes)
        }
        func fail(_ e: Error) {
            lock.lock(); defer { lock.unlock() }
            if error == nil { error = e }
        }
    }

    /// SHA-256 and size of every source file, computed on a background thread.
    final class HashJob: @unchecked Sendable {
        let files: [String]
        var result: Result<[(String, Int)], Error>?
        let done = DispatchSemaphore(value: 0)
        init(files: [String]) { self.files = files }
        func run() {
            do {
                result = .success(
                    try files.map { f in
                        let size = (try? FileManager.default.attributesOfItem(atPath: f)[.size] as? Int) ?? 0
                        return (try Hashing.sha256(file: f), size)
                    })
            } catch { result = .failure(error) }
            done.signal()
        }
        func wait() throws -> [(String, Int)] {
            done.wait()
            return try result!.get()
        }
    }
}
