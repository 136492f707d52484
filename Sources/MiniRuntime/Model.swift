import Foundation
import Formats

/// Options for opening a model.
public struct ModelOptions: Sendable {
    /// Worker threads (default: every core).
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    /// Context limit in positions (KV-cache capacity; memory is committed only as it is used).
    public var contextLimit: Int = 8192
    public init(threads: Int? = nil, contextLimit: Int? = nil) {
        if let threads { self.threads = max(1, threads) }
        if let contextLimit { self.contextLimit = max(16, contextLimit) }
    }
}

/// A bundle opened for inference: the mapping, the worker pool, the tokenizer and the LFM2 backbone.
/// Weights are read in place from the mapping. One model serves one session at a time; for concurrent sessions,
/// open one `LFMModel(bundle:)` per session over the same `ModelBundle`.
public final class LFMModel: @unchecked Sendable {
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
    let pool: WorkerPool
    public var config: LFM2AudioConfig { bundle.config }

    public convenience init(path: String, options: ModelOptions = ModelOptions()) throws {
        try self.init(bundle: ModelBundle(path: path), options: options)
    }

    /// A second model over an already mapped bundle: the weights are shared (mapped once), the caches and worker
    /// pool are its own, so two sessions can run at the same time in one process, one per model.
    public init(bundle: ModelBundle, options: ModelOptions = ModelOptions()) throws {
        try KernelTier.checkEnvironment()
        self.bundle = bundle
        let path = bundle.gguf.path
        pool = WorkerPool(threads: options.threads)
        let L = TensorLoader(bundle)
        // Tensors a `--keep-all` bundle carries that inference never reads (the schema's drop list): not an error.
        let cfg = bundle.config
        var keptUnused = Set(Schema.model(cfg).filter { $0.dropReason != nil }.map(\.name))
        if let mj = bundle.gguf.metadata[BundleKeys.mimiConfig]?.stringValue,
            let mc = try? decodeConfig(MimiConfig.self, from: Data(mj.utf8), file: path)
        {
            keptUnused.formUnion(
                Schema.mimiDecode(mc, usedCodebooks: cfg.codebooks).filter { $0.dropReason != nil }.map {
                    "mimi." + $0.name
                })
        }
        if let dj = bundle.gguf.metadata[BundleKeys.detokenizerConfig]?.stringValue,
            let dc = try? decodeConfig(LFM2Config.self, from: Data(dj.utf8), file: path)
        {
            keptUnused.formUnion(
                Schema.detokenizer(DetokenizerConfig(lfm: dc)).filter { $0.dropReason != nil }.map {
                    "detokenizer." + $0.name
                })
        }
        let unusedByDesign: (String) -> Bool = { n in
            keptUnused.contains(n)
                || (n.hasPrefix("mimi.")
                    && Schema.mimiDropReason(String(n.dropFirst(5)), usedCodebooks: cfg.codebooks) != nil)
        }
        backbone = try LFM2Backbone(
            L, prefix: "lfm.", config: bundle.config.lfm, contextLimit: options.contextLimit, pool: pool)
        try L.checkAllConsumed(prefixes: ["lfm."], except: unusedByDesign)
        if bundle.tensor("conformer.pre_encode.out.weight") != nil {
            audioEncoder = try AudioEncoder(L, config: bundle.config, pool: pool)
            try L.checkAllConsumed(prefixes: ["conformer.", "audio_adapter."], except: unusedByDesign)
        } else {
            audioEncoder = nil
        }
        if bundle.tensor("depth_linear.weight") != nil {
            audioHead = try AudioHead(L, config: bundle.config, pool: pool)
            try L.checkAllConsumed(
                prefixes: ["depthformer.", "depth_linear.", "depth_embeddings.", "audio_embedding."],
                except: unusedByDesign)
        } else {
            audioHead = nil
        }
        if let mj = bundle.gguf.metadata[BundleKeys.mimiConfig]?.stringValue {
            let mc = try decodeConfig(
                MimiConfig.self, from: Data(mj.utf8), file: path + " (" + BundleKeys.mimiConfig + ")")
            mimi = try MimiDecoder(L, config: mc, codebooks: bundle.config.codebooks, pool: pool)
            try L.checkAllConsumed(prefixes: ["mimi."], except: unusedByDesign)
        } else {
            mimi = nil
        }
        if let dj = bundle.gguf.metadata[BundleKeys.detokenizerConfig]?.stringValue {
            let dc = try decodeConfig(
                LFM2Config.self, from: Data(dj.utf8), file: path + " (" + BundleKeys.detokenizerConfig + ")")
            detokenizer = try Detokenizer(L, config: dc, pool: pool)
            try L.checkAllConsumed(prefixes: ["detokenizer."], except: unusedByDesign)
        } else {
            detokenizer = nil
        }
        guard let tj = bundle.gguf.metadata[BundleKeys.hfTokenizer]?.stringValue else {
            throw RuntimeError.tokenizer(file: path, detail: "the bundle has no \(BundleKeys.hfTokenizer)")
        }
        tokenizer = try Tokenizer(json: Data(tj.utf8), file: path)
    }
}
