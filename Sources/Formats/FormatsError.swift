import Foundation

/// Every error raised while reading checkpoints, configs and bundles. Each case names the file and,
/// where there is one, the tensor or key, so that a message alone tells the user what to fix.
public enum FormatsError: Error, CustomStringConvertible, Equatable {
    case io(file: String, message: String)
    case truncated(file: String, detail: String)
    case badHeader(file: String, detail: String)
    case badJSON(file: String, detail: String)
    case unknownDType(file: String, tensor: String, dtype: String)
    case badTensor(file: String, tensor: String, detail: String)
    case badConfig(file: String, key: String, detail: String)
    case notFound(path: String, detail: String)
    case validation(file: String, problems: [String])
    case unsupported(file: String, detail: String)

    public var description: String {
        switch self {
        case .io(let f, let m): return "\(f): \(m)"
        case .truncated(let f, let d): return "\(f): file is truncated: \(d)"
        case .badHeader(let f, let d): return "\(f): invalid header: \(d)"
        case .badJSON(let f, let d): return "\(f): invalid JSON: \(d)"
        case .unknownDType(let f, let t, let d): return "\(f): tensor '\(t)': unknown dtype '\(d)'"
        case .badTensor(let f, let t, let d): return "\(f): tensor '\(t)': \(d)"
        case .badConfig(let f, let k, let d): return "\(f): key '\(k)': \(d)"
        case .notFound(let p, let d): return "\(p): \(d)"
        case .validation(let f, let problems):
            let shown = problems.prefix(40).map { "  - \($0)" }.joined(separator: "\n")
            let more = problems.count > 40 ? "\n  … and \(problems.count - 40) more" : ""
            return
                """
                \(f): checkpoint does not match its config \
                (\(problems.count) problem\(problems.count == 1 ? "" : "s")):\n\(shown)\(more)
                """
        case .unsupported(let f, let d): return "\(f): unsupported: \(d)"
        }
    }
}
