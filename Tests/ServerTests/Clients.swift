import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP connection to 127.0.0.1 with a receive timeout.
final class RawSocket {
    let fd: Int32
    var buffer: [UInt8] = []

    init(port: Int, timeout: Int = 120) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard r == 0 else {
            Glibc.close(fd)
            throw NSError(domain: "socket", code: Int(errno))
        }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    func write(_ d: [UInt8]) throws {
        var o = 0
        while o < d.count {
            let n = d[o...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw NSError(domain: "send", code: Int(errno)) }
            o += n
        }
    }

    /// Reads more bytes into the buffer; false at end of stream.
    func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 { throw NSError(domain: "recv (timeout?)", code: Int(errno)) }
        if n == 0 { return false }
        buffer += chunk[0..<n]
        return true
    }

    func take(_ n: Int) throws -> [UInt8] {
        while buffer.count < n { guard try fill() else { throw NSError(domain: "eof", code: 0) } }
        let out = Array(buffer[0..<n])
        buffer.removeFirst(n)
        return out
    }

    func line() throws -> String {
        while true {
            if let i = buffer.firstIndex(of: 10) {
                let l = String(decoding: buffer[0..<i], as: UTF8.self)
                buffer.removeFirst(i + 1)
                return l.hasSuffix("\r") ? String(l.dropLast()) : l
            }
            guard try fill() else { throw NSError(domain: "eof", code: 0) }
        }
    }

    func close() { Glibc.close(fd) }
}

/// A `lfm-run serve` subprocess on a free port.
final class ServeProcess: @unchecked Sendable {
    let process = Process()
    var port = 0
    var key: String?
    let errPipe = Pipe()

    init(bundle: String, extra: [String] = []) throws {
        process.executableURL = URL(fileURLWithPath: serveTool("lfm-run"))
        process.arguments = ["serve", "--bundle", bundle, "--port", "0", "--threads", "2"] + extra
        process.standardError = errPipe
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let h = errPipe.fileHandleForReading
        var seen = ""
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            // wait for output at most until the deadline (a server that hangs silently fails the test, never blocks it)
            var p = pollfd(fd: h.fileDescriptor, events: Int16(POLLIN), revents: 0)
            let ms = Int32(max(deadline.timeIntervalSinceNow, 0) * 1000)
            guard poll(&p, 1, ms) > 0 else { break }
            let d = h.availableData
            if d.isEmpty { break }
            seen += String(decoding: d, as: UTF8.self)
            if let r = seen.range(of: #"listening on http://127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                port = Int(seen[r].split(separator: ":").last!)!
                break
            }
        }
        guard port > 0 else { throw NSError(domain: "serve did not start: \(seen)", code: 1) }
        // keep draining stderr so the server never blocks on it
        h.readabilityHandler = { fh in _ = fh.availableData }
    }

    func stop() { if process.isRunning { _ = terminate() } }

    /// SIGTERM; the exit status (SIGKILL after `grace` seconds: a server that does not stop fails, never hangs).
    func terminate(grace: Double = 30) -> Int32 {
        process.terminate()
        if !waitForExit(process, seconds: grace) {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        return process.terminationStatus
    }

    func request(
        _ method: String, _ path: String, json: Any? = nil, body: Data? = nil, contentType: String = "application/json",
        headers extra: [String: String] = [:]
    ) throws -> (Int, Data, [String: String]) {
        let b = try json.map { try JSONSerialization.data(withJSONObject: $0) } ?? body ?? Data()
        let s = try RawSocket(port: port)
        defer { s.close() }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        if let key { head += "Authorization: Bearer \(key)\r\n" }
        for (k, v) in extra { head += "\(k): \(v)\r\n" }
        if method == "POST" { head += "Content-Type: \(contentType)\r\nContent-Length: \(b.count)\r\n" }
        head += "\r\n"
        // a server that refuses a large body may close before reading it all: read its answer anyway
        try? s.write(Array(head.utf8) + [UInt8](b))
        let status = Int(try s.line().split(separator: " ")[1])!
        var headers: [String: String] = [:]
        while true {
            let l = try s.line()
            if l.isEmpty { break }
            if let c = l.firstIndex(of: ":") {
                headers[String(l[..<c]).capitalized] = l[l.index(after: c)...].trimmingCharacters(in: .whitespaces)
            }
        }
        var out: [UInt8] = []
        if headers["Transfer-Encoding"]?.lowercased() == "chunked" {
            while true {
                let n = Int(try s.line().split(separator: ";")[0], radix: 16) ?? 0
                if n == 0 { break }
                out += try s.take(n)
                _ = try s.line()
            }
        } else if let n = headers["Content-Length"].flatMap({ Int($0) }) {
            out = try s.take(n)
        } else {
            while try s.fill() {}
            out = s.buffer
        }
        return (status, Data(out), headers)
    }

    func multipart(
        _ path: String, fields: [String: String], file: Data, name: String
    ) throws -> (Int, Data, [String: String]) {
        let boundary = "----lfm\(UUID().uuidString)"
        var b = Data()
        for (k, v) in fields {
            b += Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(k)\"\r\n\r\n\(v)\r\n".utf8)
        }
        b += Data(
            """
            --\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(name)\"\r\nContent-Type: \
            application/octet-stream\r\n\r\n
            """
            .utf8)
        b += file
        b += Data("\r\n--\(boundary)--\r\n".utf8)
        return try request("POST", path, body: b, contentType: "multipart/form-data; boundary=\(boundary)")
    }
}

/// A minimal WebSocket client (RFC 6455: masked text frames out, unmasked frames in).
final class WSClient {
    let s: RawSocket

    init(port: Int, path: String, headers: [String: String] = [:]) throws {
        s = try RawSocket(port: port, timeout: 120)
        var head =
            """
            GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: \
            Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n
            """
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        try s.write(Array((head + "\r\n").utf8))
        let status = try s.line()
        guard status.contains(" 101 ") else { throw NSError(domain: "upgrade failed: \(status)", code: 1) }
        while try !s.line().isEmpty {}
    }

    func sendText(_ t: String) throws { try frame(0x1, Array(t.utf8)) }
    func send(_ o: [String: Any]) throws {
        try sendText(String(decoding: try JSONSerialization.data(withJSONObject: o), as: UTF8.self))
    }

    func frame(_ opcode: UInt8, _ payload: [UInt8]) throws {
        var f: [UInt8] = [0x80 | opcode]
        let n = payload.count
        if n < 126 {
            f.append(0x80 | UInt8(n))
        } else if n < 65536 {
            f += [0x80 | 126, UInt8(n >> 8), UInt8(n & 0xFF)]
        } else {
            f.append(0x80 | 127)
            for i in (0..<8).reversed() { f.append(UInt8((n >> (8 * i)) & 0xFF)) }
        }
        let mask: [UInt8] = [1, 2, 3, 4]
        f += mask
        f += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        try s.write(f)
    }

    /// The next text message as JSON (pings are answered, other frames skipped).
    func next() throws -> [String: Any] {
        while true {
            let h = try s.take(2)
            let op = h[0] & 0x0F
            var n = Int(h[1] & 0x7F)
            if n == 126 {
                let e = try s.take(2)
                n = Int(e[0]) << 8 | Int(e[1])
            } else if n == 127 {
                n = try s.take(8).reduce(0) { $0 << 8 | Int($1) }
            }
            let p = try s.take(n)
            if op == 0x9 { try frame(0xA, p); continue }
            if op == 0x8 { throw NSError(domain: "closed", code: 0) }
            if op == 0x1 { return try json(Data(p)) }
        }
    }

    func close() {
        try? frame(0x8, [0x03, 0xE8])
        s.close()
    }
}
