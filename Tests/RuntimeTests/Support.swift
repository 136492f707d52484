import Foundation
import XCTest
import TestSupport
@testable import Formats
@testable import Quantize
@_spi(Tools) @testable import MiniRuntime

/// Bundles of the fixtures, converted once per process and preset.
enum Bundles {
    nonisolated(unsafe) static var cache: [String: String] = [:]
    static let lock = NSLock()
    static func path(_ fixture: String, _ preset: Preset) throws -> String {
        lock.lock(); defer { lock.unlock() }
        let key = "\(fixture)-\(preset.rawValue)"
        if let p = cache[key] { return p }
        let ckpt = try Checkpoint(folder: try materialized(fixture))
        let plan = try Planner.plan(ckpt, recipe: Recipe(preset: preset))
        let out = tmpDir("rt") + "/\(key).gguf"
        _ = try Converter.convert(ckpt, plan: plan, to: out, options: ConvertOptions(threads: 2))
        cache[key] = out
        return out
    }

    /// A copy of the fixture checkpoint with its detokenizer weights regenerated from the recipe.
    static func materialized(_ fixture: String) throws -> String { try materializedFixture(fixture) }
}

/// Golden tensors as float arrays.
struct Goldens {
    let file: SafetensorsFile
    init(_ path: String) throws { file = try SafetensorsFile(path: path) }
    func floats(_ name: String) -> [Float] {
        let t = file.tensors[name]!
        switch t.dtype {
        case .f32: return Array(t.bytes.bindMemory(to: Float.self))
        case .i64: return t.bytes.bindMemory(to: Int64.self).map { Float($0) }
        case .i32: return t.bytes.bindMemory(to: Int32.self).map { Float($0) }
        default: fatalError("dtype \(t.dtype)")
        }
    }
    func ints(_ name: String) -> [Int] {
        let t = file.tensors[name]!
        switch t.dtype {
        case .i64: return t.bytes.bindMemory(to: Int64.self).map { Int($0) }
        case .i32: return t.bytes.bindMemory(to: Int32.self).map { Int($0) }
        case .f32: return t.bytes.bindMemory(to: Float.self).map { Int($0) }
        default: fatalError("dtype \(t.dtype)")
        }
    }
    func shape(_ name: String) -> [Int] { file.tensors[name]!.shape }
}

/// max |a − b| / max |b|.
func relErr(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "\(a.count) vs \(b.count)")
    var m: Float = 0, r: Float = 0
    for i in a.indices { m = max(m, abs(a[i] - b[i])); r = max(r, abs(b[i])) }
    return m / max(r, 1e-30)
}
