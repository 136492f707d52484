import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory mapping of a whole file. Tensors are views into it; nothing is copied.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    public let base: UnsafeRawPointer?
    private let mapping: UnsafeMutableRawPointer?
    private var owned = false

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw FormatsError.io(file: path, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw FormatsError.io(file: path, message: "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw FormatsError.io(file: path, message: "not a regular file")
        }
        size = Int(st.st_size)
        if size == 0 {
            mapping = nil
            base = nil
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw FormatsError.io(file: path, message: "cannot map: \(String(cString: strerror(errno)))")
        }
        mapping = p
        base = UnsafeRawPointer(p)
    }

    /// An in-memory copy of `data` with the same interface (fuzzing and tests).
    public init(data: Data, name: String) {
        path = name
        let n = data.count
        size = n
        if n == 0 { mapping = nil; base = nil; return }
        let p = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 64)
        data.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: n) }
        mapping = p
        base = UnsafeRawPointer(p)
        owned = true
    }

    deinit {
        if let mapping { if owned { mapping.deallocate() } else { munmap(mapping, size) } }
    }

    /// Bytes [offset, offset+count) as a buffer; the caller has validated the range.
    public func bytes(at offset: Int, count: Int) -> UnsafeRawBufferPointer {
        guard let base, count > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + offset, count: count)
    }
}
