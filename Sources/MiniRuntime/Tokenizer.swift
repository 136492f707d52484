import Foundation
import Formats

/// Placeholder replaced below.
public final class Tokenizer: @unchecked Sendable {
    public init(json: Data, file: String) throws {}
}
