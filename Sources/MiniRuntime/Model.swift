import Foundation
import Formats

/// Options for opening a model.
public struct ModelOptions: Sendable {
    /// Worker threads (default: every core).
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    /// Context limit in positions (KV-cache capacity; memory is committed only as it is used).
    public var contextLimit: Int = 8192
    /// Batch the decode steps of conversations running turns at the same time into one pass over the weights per
    /// step (a server's many streams). Results are bit-equal either way; off, each turn steps on its own thread.
    public var batchDecode = false
    public init(threads: Int? = nil, contextLimit: Int? = nil, batchDecode: Bool = false) {
        if let threads { self.threads = max(1, threads) }
        if let contextLimit { self.contextLimit = max(16, contextLimit) }
        self.batchDecode = batchDecode
    }
}

/// A bundle opened for inference: the mapping, the tokenizer and every component the bundle holds, read in place
/// from the mapping. Immutable and `Sendable`: open it once and run any number of conversations on it at the same
/// time (`Conversation(model:)`); each conversation holds only its own caches, and their work shares the one
/// worker pool of the process.
public final class LFMModel: Sendable {
    public let bundle: ModelBundle
    public let backbone: LFM2Backbone
    public let tokenizer: Tokenizer
    /// The audio input path (conformer + adapter), when the bundle has it.
    public let audioEncoder: AudioEncoder?
    /// The audio head (depthformer, codebook tables, audio embeddings), when the bundle has it.
    public let audioHead: AudioHead?
    /// Mimi's decoder (codes → 24 kHz), when the bundle has it.
    public let mimi: MimiDecoder?
    /// The LFM2 detokenizer (codes → 24 kHz), when the bundle has it (LFM2.5-Audio).
    public let detokenizer: Detokenizer?
    /// Special token ids and the end-of-audio code, from the bundle's metadata.
    public let tokens: SpecialTokenIds
    let pool: WorkerPool
    /// Batches concurrent turns' decode steps (`ModelOptions.batchDecode`), else nil.
    let scheduler: DecodeScheduler?
    public var config: LFM2AudioConfig { bundle.config }
    /// Worker threads computing for this model's conversations.
    public var threads: Int { pool.threads }

    public convenience init(path: String, options: ModelOptions = ModelOptions()) throws {
        try self.init(bundle: ModelBundle(path: path), options: options)
    }

    /// A model over an already mapped bundle (the weights are read in place; nothing is copied).
    public init(bundle: ModelBundle, options: ModelOptions = ModelOptions()) throws {
        try KernelTier.checkEnvironment()
        self.bundle = bundle
        let path = bundle.gguf.path
        pool = WorkerPool.shared(threads: options.threads)
        scheduler = options.batchDecode ? DecodeScheduler() : nil
        tokens = try SpecialTokenIds(metadata: bundle.gguf.metadata, file: path)
        let has = { (c: Component) in bundle.components.contains(c.rawValue) }
        let L = TensorLoader(bundle)
        // Tensors a `--keep-all` bundle carries that inference never reads (the schema's drop list): not an error.
        let cfg = bundle.config
        var keptUnused = Set(Schema.model(cfg).filter { $0.dropReason != nil }.map(\.name))
        if let mj = bundle.gguf.metadata[BundleKeys.mimiConfig]?.stringValue,
            let mc = try? decodeConfig(MimiConfig.self, from: Data(mj.utf8), file: path)
        {
            keptUnused.formUnion(
                Schema.mimiDecode(mc, usedCodebooks: cfg.codebooks).filter { $0.dropReason != nil }.map {
                    BundleNames.mimiPrefix + $0.name
                })
        }
        if let dj = bundle.gguf.metadata[BundleKeys.detokenizerConfig]?.stringValue,
            let dc = try? decodeConfig(LFM2Config.self, from: Data(dj.utf8), file: path)
        {
            keptUnused.formUnion(
                Schema.detokenizer(DetokenizerConfig(lfm: dc)).filter { $0.dropReason != nil }.map {
                    BundleNames.detokenizerPrefix + $0.name
                })
        }
        let unusedByDesign: (String) -> Bool = { n in
            keptUnused.contains(n)
                || (n.hasPrefix(BundleNames.mimiPrefix)
                    && Schema.mimiDropReason(
                        String(n.dropFirst(BundleNames.mimiPrefix.count)), usedCodebooks: cfg.codebooks) != nil)
        }
        backbone = try LFM2Backbone(
            L, prefix: BundleNames.backbonePrefix, config: bundle.config.lfm, contextLimit: options.contextLimit,
            pool: pool)
        try L.checkAllConsumed(prefixes: BundleNames.prefixes(.backbone), except: unusedByDesign)
        if has(.conformer) {
            audioEncoder = try AudioEncoder(L, config: bundle.config, pool: pool)
            try L.checkAllConsumed(
                prefixes: BundleNames.prefixes(.conformer) + BundleNames.prefixes(.adapter), except: unusedByDesign)
        } else {
            audioEncoder = nil
        }
        if has(.depthformer) {
            audioHead = try AudioHead(L, config: bundle.config, endOfAudio: tokens.endOfAudio, pool: pool)
            try L.checkAllConsumed(
                prefixes: BundleNames.prefixes(.depthformer) + BundleNames.prefixes(.audioEmbedding),
                except: unusedByDesign)
        } else {
            audioHead = nil
        }
        if has(.mimi) {
            guard let mj = bundle.gguf.metadata[BundleKeys.mimiConfig]?.stringValue else {
                throw FormatsError.badHeader(
                    file: path, detail: "the bundle lists mimi but has no \(BundleKeys.mimiConfig)")
            }
            let mc = try decodeConfig(
                MimiConfig.self, from: Data(mj.utf8), file: path + " (" + BundleKeys.mimiConfig + ")")
            mimi = try MimiDecoder(L, config: mc, codebooks: bundle.config.codebooks, pool: pool)
            try L.checkAllConsumed(prefixes: BundleNames.prefixes(.mimi), except: unusedByDesign)
        } else {
            mimi = nil
        }
        if has(.detokenizer) {
            guard let dj = bundle.gguf.metadata[BundleKeys.detokenizerConfig]?.stringValue else {
                throw FormatsError.badHeader(
                    file: path, detail: "the bundle lists detokenizer but has no \(BundleKeys.detokenizerConfig)")
            }
            let dc = try decodeConfig(
                LFM2Config.self, from: Data(dj.utf8), file: path + " (" + BundleKeys.detokenizerConfig + ")")
            detokenizer = try Detokenizer(L, config: dc, pool: pool)
            try L.checkAllConsumed(prefixes: BundleNames.prefixes(.detokenizer), except: unusedByDesign)
        } else {
            detokenizer = nil
        }
        guard let tj = bundle.gguf.metadata[BundleKeys.hfTokenizer]?.stringValue else {
            throw RuntimeError.tokenizer(file: path, detail: "the bundle has no \(BundleKeys.hfTokenizer)")
        }
        tokenizer = try Tokenizer(json: Data(tj.utf8), file: path)
    }
}
