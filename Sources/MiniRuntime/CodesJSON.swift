import Foundation
import Formats

/// The codes file of `lfm-run decode`: a JSON list of frames, each a list of integers in 0…2048 (2048 = end of
/// audio), checked strictly (bounded size, no other types).
public enum CodesJSON {
    public static let maxFrames = 1_000_000
    public static func parse(_ data: Data, name: String) throws -> [[Int]] {
        let v = try JSONValue.parse(data: data, file: name, what: "codes JSON")
        guard let arr = v.arrayValue else { throw RuntimeError.badInput("\(name): expected a JSON list of frames") }
        guard arr.count <= maxFrames else {
            throw RuntimeError.badInput("\(name): \(arr.count) frames is more than the \(maxFrames) allowed")
        }
        return try arr.enumerated().map { i, f in
            guard let codes = f.arrayValue else { throw RuntimeError.badInput("\(name): frame \(i) is not a list") }
            guard codes.count <= 64 else { throw RuntimeError.badInput("\(name): frame \(i) has \(codes.count) codes") }
            return try codes.enumerated().map { j, c in
                guard let x = c.intValue, x >= 0, x <= 2048 else {
                    throw RuntimeError.badInput("\(name): frame \(i) code \(j) is not an integer in 0…2048")
                }
                return x
            }
        }
    }
}
