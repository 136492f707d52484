import Foundation

/// A set of safetensors tensors gathered from one or more files (shards).
public struct TensorSet: Sendable {
    public var tensors: [String: SafetensorsTensor] = [:]
    /// Source files in the order they were opened.
    public var files: [String] = []
    public init() {}
    public subscript(name: String) -> SafetensorsTensor? { tensors[name] }
    public var names: [String] { tensors.keys.sorted() }
}

/// Known file names of released checkpoints.
public enum CheckpointFiles {
    public static let config = "config.json"
    public static let model = "model.safetensors"
    public static let modelIndex = "model.safetensors.index.json"
    public static let tokenizer = "tokenizer.json"
    public static let tokenizerConfig = "tokenizer_config.json"
    public static let chatTemplate = "chat_template.jinja"
    public static let mimi = "tokenizer-e351c8d8-checkpoint125.safetensors"
    public static let mimiConfig = "mimi_config.json"
    public static let detokenizerDir = "audio_detokenizer"
    /// PyTorch pickle weights (`safe_serialization=False`), which this tool does not read.
    public static let pickleWeights = ["pytorch_model.bin", "pytorch_model.bin.index.json"]

    /// Files that accelerate's `Accelerator.save_state` writes beside the weights (liquid_audio/trainer.py
    /// `Trainer.train` calls it every `save_interval` steps into `checkpoints/checkpoint_N/`): optimizer, scheduler,
    /// sampler, grad-scaler and RNG state. They are training state, not model weights, and are ignored.
    public static func isTrainerState(_ name: String) -> Bool {
        let n = name.lowercased()
        if n.hasPrefix("random_states") && n.hasSuffix(".pkl") { return true }
        if n.hasPrefix("custom_checkpoint_") && n.hasSuffix(".pkl") { return true }
        for stem in ["optimizer", "scheduler", "sampler", "scaler", "dl_state_dict"] where n.hasPrefix(stem) {
            if n.hasSuffix(".bin") || n.hasSuffix(".pt") || n.hasSuffix(".pth") || n.hasSuffix(".safetensors") {
                return true
            }
        }
        return false
    }
}

/// Where a checkpoint file was read from: the checkpoint folder itself, or the `--base` model.
public enum FileOrigin: String, Sendable, Codable {
    case checkpoint, base
}

/// Token ids the reference hard-codes; asserted against tokenizer.json at conversion.
public enum SpecialTokens {
    public static let required: [(String, Int)] = [
        ("<|startoftext|>", 1), ("<|im_start|>", 6), ("<|im_end|>", 7), ("<|audio_start|>", 128), ("<|text_end|>", 130),
    ]
    /// The end-of-audio code (codebook value 2048), written as `lfm2audio.audio.end_of_audio_code`.
    public static let endOfAudio = 2048
    /// The metadata key of a special token ("<|im_end|>" → `lfm2audio.token.im_end`).
    public static func key(_ token: String) -> String {
        BundleKeys.token(token.trimmingCharacters(in: CharacterSet(charactersIn: "<|>")))
    }
}

/// The special ids a bundle's runtime uses, read from its metadata (`lfm2audio.token.*`,
/// `lfm2audio.audio.end_of_audio_code`): the converter writes them once from `SpecialTokens`.
public struct SpecialTokenIds: Sendable, Equatable {
    public let startOfText: Int, imStart: Int, imEnd: Int, audioStart: Int, textEnd: Int
    public let endOfAudio: Int

    /// The reference's ids.
    public static let reference = SpecialTokenIds(
        startOfText: 1, imStart: 6, imEnd: 7, audioStart: 128, textEnd: 130, endOfAudio: SpecialTokens.endOfAudio)

    public init(startOfText: Int, imStart: Int, imEnd: Int, audioStart: Int, textEnd: Int, endOfAudio: Int) {
        self.startOfText = startOfText; self.imStart = imStart; self.imEnd = imEnd; self.audioStart = audioStart
        self.textEnd = textEnd; self.endOfAudio = endOfAudio
    }

    /// Reads the ids; a missing or non-integer key is an error naming it.
    public init(metadata m: [String: GGUFValue], file: String) throws {
        func id(_ key: String) throws -> Int {
            guard let v = m[key]?.intValue, v >= 0 else {
                throw FormatsError.badHeader(file: file, detail: "metadata \(key) is missing or not an integer")
            }
            return v
        }
        startOfText = try id(SpecialTokens.key("<|startoftext|>"))
        imStart = try id(SpecialTokens.key("<|im_start|>"))
        imEnd = try id(SpecialTokens.key("<|im_end|>"))
        audioStart = try id(SpecialTokens.key("<|audio_start|>"))
        textEnd = try id(SpecialTokens.key("<|text_end|>"))
        endOfAudio = try id(BundleKeys.endOfAudio)
    }
}

/// A released LFM2-Audio checkpoint on disk: config, tensors of every component, tokenizer.
public final class Checkpoint: @unchecked Sendable {
    public let root: String
    public let configData: Data
    public let config: LFM2AudioConfig
    public let model: TensorSet
    public let tokenizerData: Data
    public let tokenizerConfigData: Data?
    public let chatTemplate: String?
    /// Special token name → id, read from tokenizer.json.
    public let specialTokenIds: [String: Int]

    public struct Mimi: Sendable {
        public let file: String
        public let config: MimiConfig
        /// The mimi_config.json bytes, or nil when the reference defaults apply.
        public let configData: Data?
        /// The mimi_config.json path, when there is one.
        public let configFile: String?
        public let tensors: TensorSet
    }
    public let mimi: Mimi?

    public struct Detokenizer: Sendable {
        public let configFile: String
        public let configData: Data
        public let config: DetokenizerConfig
        public let tensors: TensorSet
    }
    public let detokenizer: Detokenizer?
    /// Non-fatal findings (e.g. an audio_detokenizer folder without weights).
    public let warnings: [String]
    /// The base model (`--base`) that supplied the files this folder lacks; nil without one.
    public let baseRoot: String?
    /// Training-state files found beside the weights (optimizer, scheduler, RNG state) and ignored.
    public let ignoredFiles: [String]
    /// Paths of the non-weight files as read (config, tokenizer files, chat template, Mimi config), either in
    /// `root` or in `baseRoot`.
    let configPath: String, tokenizerPath: String, tokenizerConfigPath: String?, chatTemplatePath: String?

    /// Every source file read, for the bundle's provenance record.
    public var sourceFiles: [String] {
        var f = [configPath] + model.files + [tokenizerPath]
        if let tokenizerConfigPath { f.append(tokenizerConfigPath) }
        if let chatTemplatePath { f.append(chatTemplatePath) }
        if let mimi { f.append(mimi.file); if let c = mimi.configFile { f.append(c) } }
        if let detokenizer { f.append(detokenizer.configFile); f += detokenizer.tensors.files }
        return f
    }

    /// Whether a source file came from the checkpoint folder or from the base model.
    public func origin(of file: String) -> FileOrigin {
        if let baseRoot, file.hasPrefix(baseRoot.hasSuffix("/") ? baseRoot : baseRoot + "/") { return .base }
        return .checkpoint
    }

    /// A source file's name relative to the folder it came from (checkpoint or base).
    public func relativeName(of file: String) -> String {
        let r = origin(of: file) == .base ? baseRoot! : root
        let prefix = r.hasSuffix("/") ? r : r + "/"
        return file.hasPrefix(prefix) ? String(file.dropFirst(prefix.count)) : file
    }

    /// Opens a checkpoint given as a folder, a hub-cache snapshot folder, a hub-cache repo folder
    /// (`models--ORG--NAME`) or a repo id (`ORG/NAME`) resolved in the local hub cache.
    /// `base` (same forms as `spec`) supplies every non-weight file the checkpoint folder lacks: a fine-tune saved
    /// by liquid-audio's trainer holds only `model.safetensors` (docs/format.md §Fine-tuned checkpoints).
    public convenience init(
        _ spec: String, base: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        try self.init(
            folder: try Checkpoint.resolve(spec, environment: environment),
            base: try base.map { try Checkpoint.resolve($0, environment: environment) })
    }

    public init(folder: String, base: String? = nil) throws {
        root = folder
        baseRoot = base
        let fm = FileManager.default
        var warnings: [String] = []

        // Training state beside the weights (accelerate save_state) is ignored and named in the report.
        let listing = ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).sorted()
        ignoredFiles = listing.filter(CheckpointFiles.isTrainerState)
        let hasWeights =
            fm.fileExists(atPath: folder + "/" + CheckpointFiles.model)
            || fm.fileExists(atPath: folder + "/" + CheckpointFiles.modelIndex)
        if !hasWeights {
            if let pk = CheckpointFiles.pickleWeights.first(where: { listing.contains($0) }) {
                throw FormatsError.unsupported(
                    file: folder + "/" + pk,
                    detail: "PyTorch pickle weights are not read; save with safe_serialization=True (model.safetensors)"
                )
            }
            if !ignoredFiles.isEmpty {
                throw FormatsError.notFound(
                    path: folder,
                    detail:
                        """
                        holds only training state (\(ignoredFiles.joined(separator: ", "))) and no \
                        \(CheckpointFiles.model): there are no model weights to convert (accelerate's save_state \
                        writes them beside the optimizer state as \(CheckpointFiles.model))
                        """
                )
            }
        }

        /// A non-weight file: from the checkpoint folder, else from the base.
        func locate(_ n: String) -> String? {
            if fm.fileExists(atPath: folder + "/" + n) { return folder + "/" + n }
            if let base, fm.fileExists(atPath: base + "/" + n) { return base + "/" + n }
            return nil
        }
        func read(_ p: String) throws -> Data {
            guard let d = fm.contents(atPath: p) else { throw FormatsError.io(file: p, message: "cannot read") }
            return d
        }
        func required(_ n: String) throws -> String {
            if let p = locate(n) { return p }
            if let base {
                throw FormatsError.notFound(
                    path: folder + "/" + n, detail: "missing from the checkpoint and from the base \(base)")
            }
            if n == CheckpointFiles.config && hasWeights {
                throw FormatsError.notFound(
                    path: folder + "/" + n,
                    detail:
                        """
                        missing from the checkpoint; a fine-tune saved by a trainer (final/, \
                        checkpoints/checkpoint_N/) holds only weights: give the model it was fine-tuned from with \
                        --base BASE (a folder, hub snapshot or repo id)
                        """
                )
            }
            throw FormatsError.notFound(path: folder + "/" + n, detail: "missing from the checkpoint")
        }

        configPath = try required(CheckpointFiles.config)
        configData = try read(configPath)
        config = try decodeConfig(LFM2AudioConfig.self, from: configData, file: configPath)
        try config.validate(file: configPath)

        model = try Checkpoint.openTensors(
            folder: folder, single: CheckpointFiles.model, index: CheckpointFiles.modelIndex)

        tokenizerPath = try required(CheckpointFiles.tokenizer)
        tokenizerData = try read(tokenizerPath)
        let tok = try JSONValue.parse(data: tokenizerData, file: tokenizerPath, what: "tokenizer.json")
        var ids: [String: Int] = [:]
        for t in tok["added_tokens"]?.arrayValue ?? [] {
            if let c = t["content"]?.stringValue, let id = t["id"]?.intValue { ids[c] = id }
        }
        for (name, id) in SpecialTokens.required {
            guard let got = ids[name] else {
                throw FormatsError.badConfig(
                    file: tokenizerPath, key: "added_tokens",
                    detail: "special token \(name) is missing (the reference expects id \(id))")
            }
            guard got == id else {
                throw FormatsError.badConfig(
                    file: tokenizerPath, key: "added_tokens",
                    detail: "special token \(name) has id \(got), the reference hard-codes \(id)")
            }
        }
        specialTokenIds = ids
        tokenizerConfigPath = locate(CheckpointFiles.tokenizerConfig)
        tokenizerConfigData = try tokenizerConfigPath.map(read)
        if let p = locate(CheckpointFiles.chatTemplate) {
            chatTemplatePath = p
            chatTemplate = String(decoding: try read(p), as: UTF8.self)
        } else if let tc = tokenizerConfigData, let tcp = tokenizerConfigPath,
            let v = try? JSONValue.parse(data: tc, file: tcp), let s = v["chat_template"]?.stringValue
        {
            chatTemplatePath = nil
            chatTemplate = s
        } else {
            chatTemplatePath = nil
            chatTemplate = nil
        }

        // Mimi codec (both released models ship it). Its config comes from the same folder as the file.
        if let mimiPath = locate(CheckpointFiles.mimi) {
            let dir = (mimiPath as NSString).deletingLastPathComponent
            var mc = MimiConfig()
            var mcData: Data? = nil, mcPath: String? = nil
            if fm.fileExists(atPath: dir + "/" + CheckpointFiles.mimiConfig) {
                let p = dir + "/" + CheckpointFiles.mimiConfig
                let d = try read(p)
                mc = try decodeConfig(MimiConfig.self, from: d, file: p)
                mcData = d; mcPath = p
            }
            try mc.validate(file: mcPath ?? mimiPath)
            let f = try SafetensorsFile(path: mimiPath)
            var ts = TensorSet()
            ts.tensors = f.tensors
            ts.files = [f.path]
            mimi = Mimi(file: f.path, config: mc, configData: mcData, configFile: mcPath, tensors: ts)
        } else {
            mimi = nil
        }

        // LFM2 detokenizer (LFM2.5-Audio): the fine-tune's own folder, else the base's, as a whole.
        var isDir: ObjCBool = false
        var detokDir = folder + "/" + CheckpointFiles.detokenizerDir
        if !(fm.fileExists(atPath: detokDir, isDirectory: &isDir) && isDir.boolValue), let base {
            detokDir = base + "/" + CheckpointFiles.detokenizerDir
        }
        if fm.fileExists(atPath: detokDir, isDirectory: &isDir), isDir.boolValue {
            let cfgPath = detokDir + "/" + CheckpointFiles.config
            guard let d = fm.contents(atPath: cfgPath) else {
                throw FormatsError.notFound(
                    path: cfgPath, detail: "the audio_detokenizer folder has no readable config.json")
            }
            let lc = try decodeConfig(LFM2Config.self, from: d, file: cfgPath)
            try lc.validate(file: cfgPath, key: "")
            guard lc.hiddenSize == DetokenizerConfig.width else {
                throw FormatsError.badConfig(
                    file: cfgPath, key: "hidden_size",
                    detail: "\(lc.hiddenSize), the reference detokenizer is hard-coded to \(DetokenizerConfig.width)")
            }
            let hasWeights =
                fm.fileExists(atPath: detokDir + "/" + CheckpointFiles.model)
                || fm.fileExists(atPath: detokDir + "/" + CheckpointFiles.modelIndex)
            if hasWeights {
                let ts = try Checkpoint.openTensors(
                    folder: detokDir, single: CheckpointFiles.model, index: CheckpointFiles.modelIndex)
                detokenizer = Detokenizer(
                    configFile: cfgPath, configData: d, config: DetokenizerConfig(lfm: lc), tensors: ts)
            } else {
                warnings.append("\(detokDir): no model.safetensors, so the bundle will have no LFM2 detokenizer")
                detokenizer = nil
            }
        } else {
            detokenizer = nil
        }
        self.warnings = warnings
    }

    /// Opens `single`, or the shards listed in `index` (`weight_map`), validating that every listed tensor
    /// is in its shard and that no shard holds a tensor the index does not list.
    public static func openTensors(folder: String, single: String, index: String) throws -> TensorSet {
        let fm = FileManager.default
        var set = TensorSet()
        let singlePath = folder + "/" + single, indexPath = folder + "/" + index
        if fm.fileExists(atPath: singlePath) {
            let f = try SafetensorsFile(path: singlePath)
            set.tensors = f.tensors
            set.files = [singlePath]
            return set
        }
        guard fm.fileExists(atPath: indexPath) else {
            throw FormatsError.notFound(path: singlePath, detail: "missing from the checkpoint (and no \(index))")
        }
        guard let data = fm.contents(atPath: indexPath) else {
            throw FormatsError.io(file: indexPath, message: "cannot read")
        }
        let v = try JSONValue.parse(data: data, file: indexPath, what: "shard index")
        guard let map = v["weight_map"]?.objectValue else {
            throw FormatsError.badConfig(file: indexPath, key: "weight_map", detail: "missing or not an object")
        }
        var byFile: [String: [String]] = [:]
        for (name, f) in map {
            guard let s = f.stringValue, !s.contains("/"), !s.hasPrefix(".") else {
                throw FormatsError.badConfig(
                    file: indexPath, key: "weight_map.\(name)", detail: "shard name \(f) is not a plain file name")
            }
            byFile[s, default: []].append(name)
        }
        for shard in byFile.keys.sorted() {
            let p = folder + "/" + shard
            let f = try SafetensorsFile(path: p)
            for name in byFile[shard]! {
                guard let t = f.tensors[name] else {
                    throw FormatsError.badTensor(
                        file: p, tensor: name, detail: "listed in \(index) but not in this shard")
                }
                set.tensors[name] = t
            }
            for name in f.tensors.keys where map[name]?.stringValue != shard {
                throw FormatsError.badTensor(
                    file: p, tensor: name, detail: "present in this shard but \(index) does not map it here")
            }
            set.files.append(p)
        }
        return set
    }

    /// Resolves a checkpoint spec to a folder.
    public static func resolve(_ spec: String, environment: [String: String]) throws -> String {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: spec, isDirectory: &isDir) {
            guard isDir.boolValue else {
                throw FormatsError.notFound(path: spec, detail: "is a file; give the checkpoint folder")
            }
            let url = URL(fileURLWithPath: spec).standardizedFileURL
            // A hub-cache repo folder: pick its snapshot.
            if url.lastPathComponent.hasPrefix("models--"), fm.fileExists(atPath: url.path + "/snapshots") {
                return try snapshot(in: url.path)
            }
            return url.path
        }
        let parts = spec.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty, !spec.hasPrefix("."), !spec.hasPrefix("~") else {
            throw FormatsError.notFound(path: spec, detail: "no such folder (and not a repo id of the form ORG/NAME)")
        }
        var roots: [String] = []
        if let c = environment["HF_HUB_CACHE"], !c.isEmpty { roots.append(c) }
        if let h = environment["HF_HOME"], !h.isEmpty { roots.append(h + "/hub") }
        let home = environment["HOME"] ?? NSHomeDirectory()
        roots.append(home + "/.cache/huggingface/hub")
        let repoDir = "models--" + parts[0] + "--" + parts[1]
        for r in roots where fm.fileExists(atPath: r + "/" + repoDir) {
            return try snapshot(in: r + "/" + repoDir)
        }
        throw FormatsError.notFound(
            path: spec,
            detail:
                """
                repo id not found in the local hub cache (looked in \
                \(roots.map { $0 + "/" + repoDir }.joined(separator: ", "))); this tool never downloads
                """
        )
    }

    /// The snapshot a hub-cache repo folder points at: `refs/main`, else the only (or newest) snapshot.
    static func snapshot(in repo: String) throws -> String {
        let fm = FileManager.default
        if let ref = fm.contents(atPath: repo + "/refs/main") {
            let rev = String(decoding: ref, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            let p = repo + "/snapshots/" + rev
            if !rev.isEmpty, !rev.contains("/"), fm.fileExists(atPath: p) { return p }
        }
        let snaps = ((try? fm.contentsOfDirectory(atPath: repo + "/snapshots")) ?? []).filter { !$0.hasPrefix(".") }
        guard !snaps.isEmpty else {
            throw FormatsError.notFound(path: repo, detail: "hub-cache repo folder has no snapshots")
        }
        let newest = snaps.max { a, b in
            let da =
                (try? fm.attributesOfItem(atPath: repo + "/snapshots/" + a)[.modificationDate] as? Date) ?? .distantPast
            let db =
                (try? fm.attributesOfItem(atPath: repo + "/snapshots/" + b)[.modificationDate] as? Date) ?? .distantPast
            return da < db
        }!
        return repo + "/snapshots/" + newest
    }
}
