import CKernels
import Foundation

/// The kernel tier in use. It is chosen once per process, from `LFM_CPU` (scalar, avx2, avx2-vnni, avx512, neon,
/// neon-dotprod, neon-i8mm) or else the best tier the CPU has; every kernel falls back to the best lower tier of its
/// family where a tier lacks it.
public enum KernelTier {
    public struct Report: Sendable, Equatable {
        /// The active tier, e.g. "avx2".
        public let tier: String
        /// The best tier this CPU can run.
        public let best: String
        /// Kernels of the active table that run on the scalar reference code (empty on a vector tier).
        public let scalarKernels: [String]
        /// The BLAS serving large F32 GEMMs (≥ 16 tokens): "OpenBLAS (core)" when libopenblas loads, else "none".
        public let blas: String
    }

    public static func report() -> Report {
        let active = lfm_tier()
        let scalar =
            active == LFM_TIER_SCALAR
            ? []
            : (0..<lfm_kernel_count()).filter { lfm_kernel_tier($0) == LFM_TIER_SCALAR }
                .map { String(cString: lfm_kernel_name($0)) }
        return Report(
            tier: String(cString: lfm_tier_name(active)), best: String(cString: lfm_tier_name(lfm_best_tier())),
            scalarKernels: scalar, blas: String(cString: lfm_blas_name()))
    }

    /// Throws when `LFM_CPU` names an unknown tier or one this CPU cannot run.
    public static func checkEnvironment() throws {
        if let message = lfm_tier_env_error() { throw RuntimeError.badInput(String(cString: message)) }
    }
}
