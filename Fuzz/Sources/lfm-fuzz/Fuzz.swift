import Foundation
import Formats
import MiniRuntime

/// One libFuzzer entry point for every parser; LFM_FUZZ_TARGET picks which: safetensors, gguf, wav, tokenizer,
/// config, codes. Any thrown error is an accepted outcome; a crash, hang or sanitizer report is a finding.
nonisolated(unsafe) let target = ProcessInfo.processInfo.environment["LFM_FUZZ_TARGET"] ?? "wav"
nonisolated(unsafe) let tokenizer: Tokenizer? = {
    guard target == "tokenizer", let p = ProcessInfo.processInfo.environment["LFM_FUZZ_TOKENIZER"],
          let d = FileManager.default.contents(atPath: p) else { return nil }
    return try? Tokenizer(json: d, file: p)
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ bytes: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let data = Data(bytes: bytes, count: size)
    switch target {
    case "safetensors": _ = try? SafetensorsFile(file: MappedFile(data: data, name: "fuzz.safetensors"))
    case "gguf": _ = try? GGUFFile(file: MappedFile(data: data, name: "fuzz.gguf"))
    case "wav": _ = try? WAVReader.parse(data, name: "fuzz.wav")
    case "config":
        _ = try? decodeConfig(LFM2AudioConfig.self, from: data, file: "config.json")
        _ = try? decodeConfig(MimiConfig.self, from: data, file: "mimi_config.json")
    case "codes": _ = try? CodesJSON.parse(data, name: "codes.json")
    case "tokenizer":
        if let t = tokenizer {
            let s = String(decoding: data, as: UTF8.self)
            let ids = t.encode(s)
            _ = t.decode(ids)
            _ = t.decode(data.prefix(64).map { Int($0) * 997 % max(t.vocabSize, 1) })
        } else { _ = try? Tokenizer(json: data, file: "tokenizer.json") }
    default: break
    }
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ cb: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

/// SwiftPM links executables through `<target>_main`; hand control to libFuzzer's driver.
@_cdecl("lfm_fuzz_main")
public func lfmFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var c = argc
    var v = argv
    return LLVMFuzzerRunDriver(&c, &v) { d, n in fuzzOne(d, n) }
}
