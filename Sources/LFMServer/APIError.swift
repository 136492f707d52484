import Foundation
import Hummingbird
import MiniRuntime

/// An error in OpenAI's shape: `{"error":{"message","type","param","code"}}`.
public struct APIError: Error, HTTPResponseError, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?

    public init(
        _ status: HTTPResponse.Status, _ message: String, param: String? = nil, code: String? = nil,
        type: String? = nil
    ) {
        self.status = status; self.message = message; self.param = param; self.code = code
        self.type =
            type
            ?? (status == .tooManyRequests
                ? "rate_limit_error" : status.code >= 500 ? "server_error" : "invalid_request_error")
    }

    public var description: String { "\(status.code) \(message)" }

    static func bad(_ message: String, param: String? = nil, code: String? = "invalid_value") -> APIError {
        APIError(.badRequest, message, param: param, code: code)
    }

    public var json: [String: Any] {
        ["error": ["message": message, "type": type, "param": orNull(param), "code": orNull(code)]]
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var r = jsonResponse(json, status: status)
        if status == .unauthorized { r.headers[.wwwAuthenticate] = "Bearer" }
        return r
    }

    /// Maps any error to the API shape: runtime input errors are 400s, HTTP errors keep their status.
    static func from(_ error: Error) -> APIError {
        switch error {
        case let e as APIError: return e
        case let e as HTTPError:
            let code: String? =
                switch e.status {
                case .notFound: "not_found"
                case .contentTooLarge: "request_too_large"
                case .methodNotAllowed: "method_not_allowed"
                default: nil
                }
            var msg = e.body ?? e.status.reasonPhrase
            if e.status == .contentTooLarge { msg = "the request body is over the upload limit (--max-upload)" }
            return APIError(e.status, msg, code: code)
        case let e as any HTTPResponseError where e.status == .contentTooLarge:
            return APIError(
                e.status, "the request body is over the upload limit (--max-upload)", code: "request_too_large")
        case let e as any HTTPResponseError:
            return APIError(e.status, e.status.reasonPhrase, code: nil)
        case let e as RuntimeError:
            switch e {
            case .contextOverflow: return APIError(.badRequest, e.description, code: "context_length_exceeded")
            case .badInput: return APIError(.badRequest, e.description, code: "invalid_value")
            case .cancelled: return APIError(.serviceUnavailable, "cancelled", code: "cancelled")
            default: return APIError(.internalServerError, e.description, code: "internal_error")
            }
        default: return APIError(.internalServerError, "\(error)", code: "internal_error")
        }
    }
}

func orNull(_ v: Any?) -> Any { v ?? NSNull() }

func jsonData(_ o: Any) -> Data {
    (try? JSONSerialization.data(withJSONObject: o, options: [.withoutEscapingSlashes])) ?? Data("{}".utf8)
}

func jsonString(_ o: Any) -> String { String(decoding: jsonData(o), as: UTF8.self) }

func jsonResponse(_ o: Any, status: HTTPResponse.Status = .ok) -> Response {
    Response(
        status: status, headers: [.contentType: "application/json"],
        body: ResponseBody(byteBuffer: ByteBuffer(data: jsonData(o))))
}

func textResponse(_ s: String, contentType: String = "text/plain; charset=utf-8") -> Response {
    Response(status: .ok, headers: [.contentType: contentType], body: ResponseBody(byteBuffer: ByteBuffer(string: s)))
}

/// Reads typed fields from a JSON object, each error naming its field.
struct Fields {
    let o: [String: Any]
    let prefix: String
    init(_ o: [String: Any], prefix: String = "") { self.o = o; self.prefix = prefix }

    static func parse(_ data: Data) throws -> Fields {
        guard !data.isEmpty else { throw APIError.bad("the request body is empty; a JSON object is expected") }
        let any: Any
        do { any = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
            throw APIError.bad("the request body is not valid JSON", code: "invalid_json")
        }
        guard let o = any as? [String: Any] else {
            throw APIError.bad("the request body must be a JSON object", code: "invalid_json")
        }
        return Fields(o)
    }

    func name(_ k: String) -> String { prefix + k }
    func has(_ k: String) -> Bool { o[k] != nil && !(o[k] is NSNull) }

    func string(_ k: String) throws -> String? {
        guard has(k) else { return nil }
        guard let s = o[k] as? String else { throw APIError.bad("'\(name(k))' must be a string", param: name(k)) }
        return s
    }
    func number(_ k: String, in range: ClosedRange<Double>) throws -> Double? {
        guard has(k) else { return nil }
        guard let n = o[k] as? NSNumber, n.doubleValue.isFinite else {
            throw APIError.bad("'\(name(k))' must be a number", param: name(k))
        }
        guard range.contains(n.doubleValue) else {
            throw APIError.bad(
                "'\(name(k))' must be between \(range.lowerBound) and \(range.upperBound)", param: name(k))
        }
        return n.doubleValue
    }
    func int(_ k: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let d = try number(k, in: Double(range.lowerBound)...Double(range.upperBound)) else { return nil }
        guard d == d.rounded() else { throw APIError.bad("'\(name(k))' must be an integer", param: name(k)) }
        return Int(d)
    }
    func bool(_ k: String) throws -> Bool? {
        guard has(k) else { return nil }
        if let b = o[k] as? Bool { return b }
        throw APIError.bad("'\(name(k))' must be a boolean", param: name(k))
    }
    func object(_ k: String) throws -> Fields? {
        guard has(k) else { return nil }
        guard let d = o[k] as? [String: Any] else {
            throw APIError.bad("'\(name(k))' must be an object", param: name(k))
        }
        return Fields(d, prefix: name(k) + ".")
    }
    func array(_ k: String) throws -> [Any]? {
        guard has(k) else { return nil }
        guard let a = o[k] as? [Any] else { throw APIError.bad("'\(name(k))' must be an array", param: name(k)) }
        return a
    }
}
