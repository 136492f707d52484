import Foundation
import Formats
import Synchronization

/// Byte-level BPE from a bundle's `tokenizer.json`: added/special tokens matched first (longest match), then the
/// pre-tokenizer (the Llama-3 split pattern of LFM2, or GPT-2's ByteLevel pattern), byte→unicode mapping, and
/// rank-ordered merges (with `ignore_merges`: a pre-token that is itself in the vocabulary is emitted directly).
public final class Tokenizer: Sendable {
    public enum Pattern: Sendable { case llama3, gpt2 }
    public let pattern: Pattern
    public let vocabSize: Int
    let vocab: [String: Int]
    let idToToken: [String?]
    let ranks: [String: Int]  // "a b" → merge rank
    let ignoreMerges: Bool
    let addPrefixSpace: Bool
    /// Added tokens: content → (id, lstrip, rstrip), and ids of added tokens.
    let added: [(content: [Unicode.Scalar], id: Int, lstrip: Bool, rstrip: Bool)]
    let addedIds: [Int: String]
    public let specialIds: Set<Int>
    /// Merge results by pre-token, shared by every conversation.
    private let cache = Mutex<[String: [Int]]>([:])

    static let byteToChar: [Character] = {
        var bs = Array(33...126) + Array(161...172) + Array(174...255)
        var cs = bs
        var n = 0
        for b in 0..<256 where !bs.contains(b) { bs.append(b); cs.append(256 + n); n += 1 }
        var table = [Character](repeating: " ", count: 256)
        for (b, c) in zip(bs, cs) { table[b] = Character(Unicode.Scalar(UInt32(c))!) }
        return table
    }()
    static let charToByte: [Character: UInt8] = {
        var m: [Character: UInt8] = [:]
        for (b, c) in byteToChar.enumerated() { m[c] = UInt8(b) }
        return m
    }()

    static let llama3Regex =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"#
        + #"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let gpt2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    public init(json: Data, file: String) throws {
        func bad(_ d: String) -> RuntimeError { .tokenizer(file: file, detail: d) }
        let j = try JSONValue.parse(data: json, file: file, what: "tokenizer.json")
        guard let model = j["model"], model["type"]?.stringValue == "BPE" else {
            throw bad("only BPE models are supported")
        }
        if let n = j["normalizer"], n != .null {
            throw bad("normalizers are not supported (\(n["type"]?.stringValue ?? "?"))")
        }
        guard let v = model["vocab"]?.objectValue else { throw bad("model.vocab is missing") }
        var vocab: [String: Int] = [:]
        for (t, id) in v {
            guard let i = id.intValue, i >= 0 else { throw bad("vocab entry '\(t)' has no valid id") }; vocab[t] = i
        }
        var ranks: [String: Int] = [:]
        for (r, m) in (model["merges"]?.arrayValue ?? []).enumerated() {
            if let s = m.stringValue {
                ranks[s] = ranks[s] ?? r
            } else if let p = m.arrayValue, p.count == 2, let a = p[0].stringValue, let b = p[1].stringValue {
                ranks[a + " " + b] = ranks[a + " " + b] ?? r
            } else {
                throw bad("merge \(r) is malformed")
            }
        }
        ignoreMerges = model["ignore_merges"]?.boolValue ?? false
        if model["byte_fallback"]?.boolValue == true { throw bad("byte_fallback is not supported") }
        // pre-tokenizer
        let pre = j["pre_tokenizer"]
        var pattern: Pattern? = nil
        var prefixSpace = false
        func byteLevel(_ node: JSONValue) throws {
            prefixSpace = node["add_prefix_space"]?.boolValue ?? false
            if node["use_regex"]?.boolValue ?? true { pattern = .gpt2 }
        }
        switch pre?["type"]?.stringValue {
        case "ByteLevel": try byteLevel(pre!)
        case "Sequence":
            for p in pre?["pretokenizers"]?.arrayValue ?? [] {
                switch p["type"]?.stringValue {
                case "Split":
                    guard let rx = p["pattern"]?["Regex"]?.stringValue else {
                        throw bad("Split without a Regex pattern")
                    }
                    guard rx == Self.llama3Regex || rx == Self.gpt2Regex else {
                        throw bad("unsupported split pattern \(rx)")
                    }
                    guard (p["behavior"]?.stringValue ?? "Isolated") == "Isolated", p["invert"]?.boolValue != true
                    else { throw bad("unsupported split behaviour") }
                    pattern = rx == Self.llama3Regex ? .llama3 : .gpt2
                case "ByteLevel":
                    prefixSpace = p["add_prefix_space"]?.boolValue ?? false
                    if p["use_regex"]?.boolValue ?? true {
                        throw bad("ByteLevel with use_regex after a Split is not supported")
                    }
                default: throw bad("unsupported pre-tokenizer \(p["type"]?.stringValue ?? "?")")
                }
            }
        default: throw bad("unsupported pre-tokenizer \(pre?["type"]?.stringValue ?? "null")")
        }
        guard let pat = pattern else { throw bad("no split pattern") }
        self.pattern = pat
        addPrefixSpace = prefixSpace
        var added: [(content: [Unicode.Scalar], id: Int, lstrip: Bool, rstrip: Bool)] = []
        var addedIds: [Int: String] = [:]
        var special = Set<Int>()
        for a in j["added_tokens"]?.arrayValue ?? [] {
            guard let c = a["content"]?.stringValue, let id = a["id"]?.intValue, !c.isEmpty else { continue }
            added.append(
                (Array(c.unicodeScalars), id, a["lstrip"]?.boolValue ?? false, a["rstrip"]?.boolValue ?? false))
            addedIds[id] = c
            if a["special"]?.boolValue ?? false { special.insert(id) }
        }
        added.sort { $0.content.count > $1.content.count }  // longest first
        self.added = added
        self.addedIds = addedIds
        self.specialIds = special
        let maxId = max(vocab.values.max() ?? 0, addedIds.keys.max() ?? 0)
        var inv = [String?](repeating: nil, count: maxId + 1)
        for (t, i) in vocab { inv[i] = t }
        for (i, t) in addedIds { inv[i] = t }
        idToToken = inv
        vocabSize = maxId + 1
        self.vocab = vocab
        self.ranks = ranks
    }

    public func id(of token: String) -> Int? { vocab[token] ?? addedIds.first { $0.value == token }?.key }
    public func token(of id: Int) -> String? { id >= 0 && id < idToToken.count ? idToToken[id] : nil }

    // MARK: encoding

    /// Token ids of `text` (no BOS/EOS: the reference passes add_special_tokens=False).
    public func encode(_ text: String) -> [Int] {
        let s = Array(text.unicodeScalars)
        var out: [Int] = []
        var start = 0, i = 0
        while i < s.count {
            if let (a, end, lstripFrom) = matchAdded(s, at: i) {
                let segEnd = lstripFrom
                if start < segEnd { out += encodePlain(Array(s[start..<segEnd])) }
                out.append(a)
                i = end; start = end
                continue
            }
            i += 1
        }
        if start < s.count { out += encodePlain(Array(s[start..<s.count])) }
        return out
    }

    /// An added token starting at i: (id, end index after rstrip, start of the lstripped whitespace).
    func matchAdded(_ s: [Unicode.Scalar], at i: Int) -> (Int, Int, Int)? {
        for a in added where a.content.count <= s.count - i {
            var ok = true
            for k in 0..<a.content.count where s[i + k] != a.content[k] { ok = false; break }
            guard ok else { continue }
            var end = i + a.content.count
            if a.rstrip { while end < s.count, s[end].properties.isWhitespace { end += 1 } }
            var from = i
            if a.lstrip { while from > 0, s[from - 1].properties.isWhitespace { from -= 1 } }
            return (a.id, end, from)
        }
        return nil
    }

    func encodePlain(_ s: [Unicode.Scalar]) -> [Int] {
        var out: [Int] = []
        var scalars = s
        if addPrefixSpace, let f = scalars.first, f != " " { scalars.insert(" ", at: 0) }
        for piece in pattern == .llama3 ? Self.splitLlama3(scalars) : Self.splitGPT2(scalars) {
            out += bpe(piece)
        }
        return out
    }

    func bpe(_ piece: ArraySlice<Unicode.Scalar>) -> [Int] {
        var mapped = ""
        for b in String(String.UnicodeScalarView(piece)).utf8 { mapped.append(Self.byteToChar[Int(b)]) }
        if let c = cache.withLock({ $0[mapped] }) { return c }
        var result: [Int]
        if ignoreMerges, let id = vocab[mapped] {
            result = [id]
        } else {
            var syms = mapped.map { String($0) }
            while syms.count > 1 {
                var best = Int.max, at = -1
                for k in 0..<(syms.count - 1) {
                    if let r = ranks[syms[k] + " " + syms[k + 1]], r < best { best = r; at = k }
                }
                if at < 0 { break }
                syms[at] += syms[at + 1]
                syms.remove(at: at + 1)
            }
            result = syms.compactMap { vocab[$0] }
        }
        let r = result
        cache.withLock { if $0.count < 100_000 { $0[mapped] = r } }
        return result
    }

    // MARK: pre-tokenization (hand-written equivalents of the two regexes, Oniguruma semantics)

    static func isL(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }
    static func isN(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }
    static func isS(_ c: Unicode.Scalar) -> Bool { c.properties.isWhitespace }
    static func isNL(_ c: Unicode.Scalar) -> Bool { c == "\r" || c == "\n" }

    /// Length of a contraction ('s 't 're 've 'm 'll 'd) at i, or 0.
    static func contraction(_ s: [Unicode.Scalar], _ i: Int, caseInsensitive: Bool) -> Int {
        guard s[i] == "'", i + 1 < s.count else { return 0 }
        func eq(_ c: Unicode.Scalar, _ l: Character) -> Bool {
            if caseInsensitive {
                if l == "s", c == "\u{017F}" { return true }  // ſ folds to s
                return Character(c).lowercased() == String(l) && c.value < 128
            }
            return Character(c) == l
        }
        let c1 = s[i + 1]
        for l: Character in ["s", "t", "m", "d"] where eq(c1, l) { return 2 }
        if i + 2 < s.count {
            let c2 = s[i + 2]
            if eq(c1, "r"), eq(c2, "e") { return 3 }
            if eq(c1, "v"), eq(c2, "e") { return 3 }
            if eq(c1, "l"), eq(c2, "l") { return 3 }
        }
        return 0
    }

    /// Whitespace alternatives shared by both patterns: `\s+(?!\S)|\s+`.
    static func whitespaceRun(_ s: [Unicode.Scalar], _ i: Int) -> Int {
        var j = i
        while j < s.count, isS(s[j]) { j += 1 }
        let run = j - i
        guard run > 0 else { return 0 }
        if j == s.count || run == 1 { return run }
        return run - 1
    }

    static func splitLlama3(_ s: [Unicode.Scalar]) -> [ArraySlice<Unicode.Scalar>] {
        var out: [ArraySlice<Unicode.Scalar>] = []
        var i = 0
        while i < s.count {
            var n = contraction(s, i, caseInsensitive: true)
            if n == 0 {
                // [^\r\n\p{L}\p{N}]?\p{L}+
                let c = s[i]
                if isL(c) {
                    var j = i + 1; while j < s.count, isL(s[j]) { j += 1 }; n = j - i
                } else if !isNL(c), !isN(c), i + 1 < s.count, isL(s[i + 1]) {
                    var j = i + 2; while j < s.count, isL(s[j]) { j += 1 }; n = j - i
                }
            }
            if n == 0, isN(s[i]) {
                var j = i + 1; while j < s.count, j - i < 3, isN(s[j]) { j += 1 }; n = j - i
            }
            if n == 0 {
                // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
                var j = i
                if s[j] == " ", j + 1 < s.count, !isS(s[j + 1]), !isL(s[j + 1]), !isN(s[j + 1]) { j += 1 }
                if j < s.count, !isS(s[j]), !isL(s[j]), !isN(s[j]) {
                    while j < s.count, !isS(s[j]), !isL(s[j]), !isN(s[j]) { j += 1 }
                    while j < s.count, isNL(s[j]) { j += 1 }
                    n = j - i
                }
            }
            if n == 0, isS(s[i]) {
                // \s*[\r\n]+ : up to the last newline of the whitespace run
                var j = i; var lastNL = -1
                while j < s.count, isS(s[j]) { if isNL(s[j]) { lastNL = j }; j += 1 }
                n = lastNL >= 0 ? lastNL + 1 - i : whitespaceRun(s, i)
            }
            if n == 0 { n = 1 }  // not reachable: every scalar matches one alternative
            out.append(s[i..<(i + n)])
            i += n
        }
        return out
    }

    static func splitGPT2(_ s: [Unicode.Scalar]) -> [ArraySlice<Unicode.Scalar>] {
        var out: [ArraySlice<Unicode.Scalar>] = []
        var i = 0
        while i < s.count {
            var n = contraction(s, i, caseInsensitive: false)
            if n == 0 {
                let sp = s[i] == " " && i + 1 < s.count ? 1 : 0
                let c = s[i + sp]
                if isL(c) {
                    var j = i + sp + 1; while j < s.count, isL(s[j]) { j += 1 }; n = j - i
                } else if isN(c) {
                    var j = i + sp + 1; while j < s.count, isN(s[j]) { j += 1 }; n = j - i
                } else if !isS(c) {
                    var j = i + sp + 1; while j < s.count, !isS(s[j]), !isL(s[j]), !isN(s[j]) { j += 1 }; n = j - i
                }
            }
            if n == 0 { n = whitespaceRun(s, i) }
            if n == 0 { n = 1 }
            out.append(s[i..<(i + n)])
            i += n
        }
        return out
    }

    // MARK: decoding

    /// The bytes of one token (added tokens: their text; others: byte-level decoded).
    public func bytes(of id: Int) -> [UInt8] {
        if let a = addedIds[id] { return Array(a.utf8) }
        guard let t = token(of: id) else { return [] }
        var out: [UInt8] = []
        for ch in t { if let b = Self.charToByte[ch] { out.append(b) } else { out += Array(String(ch).utf8) } }
        return out
    }

    /// Whole-sequence decode (invalid UTF-8 becomes U+FFFD, like the reference).
    public func decode(_ ids: [Int]) -> String {
        String(decoding: ids.flatMap { bytes(of: $0) }, as: UTF8.self)
    }
}

/// Streaming detokenization that never splits a UTF-8 character across pieces: bytes of an incomplete
/// character are held until the next token completes them (or `flush` ends the stream).
@_spi(Tools) public struct StreamingDecoder {
    let tokenizer: Tokenizer
    var pending: [UInt8] = []
    public init(_ t: Tokenizer) { tokenizer = t }

    public mutating func push(_ id: Int) -> String {
        pending += tokenizer.bytes(of: id)
        // keep back a trailing incomplete sequence (at most 3 bytes)
        var cut = pending.count
        var k = pending.count - 1, back = 0
        while k >= 0, back < 4, pending[k] & 0xC0 == 0x80 { k -= 1; back += 1 }
        if k >= 0 {
            let lead = pending[k]
            let need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
            if need > 1, pending.count - k < need { cut = k }
        }
        let out = String(decoding: pending[0..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return out
    }

    public mutating func flush() -> String {
        defer { pending = [] }
        return String(decoding: pending, as: UTF8.self)
    }
}
