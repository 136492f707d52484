import Foundation
import Formats

/// A bundle mapped read-only: tensors are typed views into the mapping; nothing is copied or converted
/// at open, so opening takes milliseconds whatever the size. The header and metadata are validated here.
public final class ModelBundle: @unchecked Sendable {
    public let gguf: GGUFFile
    public let config: LFM2AudioConfig
    public let components: [String]
    /// The tie table (docs/format.md §Tied tensors): a derived tensor name → the stored tensor it is read as.
    public let ties: [String: String]

    public init(path: String) throws {
        gguf = try GGUFFile(path: path)
        if HeaderChecksum.check(gguf) == false {
            throw FormatsError.badHeader(
                file: path,
                detail:
                    """
                    the header checksum (\(BundleKeys.headerCRC32)) does not match: the metadata or the tensor \
                    table is damaged
                    """
            )
        }
        let m = gguf.metadata
        guard m[BundleKeys.architecture]?.stringValue == BundleKeys.architectureValue else {
            throw FormatsError.badHeader(
                file: path,
                detail:
                    """
                    general.architecture is \(m[BundleKeys.architecture]?.description ?? "absent"), \
                    expected '\(BundleKeys.architectureValue)'
                    """
            )
        }
        guard let v = m[BundleKeys.formatVersion]?.intValue, v == Int(BundleKeys.currentFormatVersion) else {
            throw FormatsError.badHeader(
                file: path,
                detail:
                    """
                    bundle format version \(m[BundleKeys.formatVersion]?.description ?? "absent") is not supported \
                    (this build reads \(BundleKeys.currentFormatVersion))
                    """
            )
        }
        guard let cfg = m[BundleKeys.config]?.stringValue else {
            throw FormatsError.badHeader(file: path, detail: "no \(BundleKeys.config) metadata")
        }
        config = try decodeConfig(
            LFM2AudioConfig.self, from: Data(cfg.utf8), file: path + " (" + BundleKeys.config + ")")
        components = m[BundleKeys.components]?.stringArray ?? []
        let names = m[BundleKeys.tiedNames]?.stringArray ?? [], targets = m[BundleKeys.tiedTargets]?.stringArray ?? []
        guard names.count == targets.count else {
            throw FormatsError.badHeader(
                file: path,
                detail: "\(BundleKeys.tiedNames) has \(names.count) entries, \(BundleKeys.tiedTargets) \(targets.count)"
            )
        }
        var ties: [String: String] = [:]
        for (n, t) in zip(names, targets) {
            guard gguf.tensor(t) != nil else {
                throw FormatsError.badHeader(
                    file: path, detail: "tie '\(n)' → '\(t)': the stored tensor is not in the bundle")
            }
            guard gguf.tensor(n) == nil, ties[n] == nil else {
                throw FormatsError.badHeader(
                    file: path, detail: "tie '\(n)': the name is also a stored tensor or tied twice")
            }
            ties[n] = t
        }
        self.ties = ties
        guard let crc = m[BundleKeys.tensorCRC32]?.arrayValue, crc.count == gguf.tensors.count else {
            throw FormatsError.badHeader(
                file: path, detail: "\(BundleKeys.tensorCRC32) is missing or does not list every tensor")
        }
    }

    /// Raw bytes of a tensor by name; a tied name resolves to the tensor it is stored as.
    public func tensor(_ name: String) -> (info: GGUFTensorInfo, bytes: UnsafeRawBufferPointer)? {
        guard let t = gguf.tensor(name) ?? ties[name].flatMap({ gguf.tensor($0) }) else { return nil }
        return (t, gguf.bytes(of: t))
    }

    /// Checks every tensor's CRC32 against the bundle's record; returns the names of damaged tensors.
    public func damagedTensors(threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> [String] {
        let crcs = (gguf.metadata[BundleKeys.tensorCRC32]?.arrayValue ?? []).compactMap { v -> UInt32? in
            if case .uint32(let c) = v { return c } else { return nil }
        }
        let tensors = gguf.tensors
        guard crcs.count == tensors.count else { return tensors.map(\.name) }
        let bad = UnsafeMutablePointer<Bool>.allocate(capacity: tensors.count)
        bad.initialize(repeating: false, count: tensors.count)
        defer { bad.deallocate() }
        let out = SendablePtr(bad)
        DispatchQueue.concurrentPerform(iterations: max(1, threads)) { w in
            var i = w
            while i < tensors.count {
                out.p[i] = Hashing.crc32(gguf.bytes(of: tensors[i])) != crcs[i]
                i += max(1, threads)
            }
        }
        return tensors.indices.filter { bad[$0] }.map { tensors[$0].name }
    }
}
