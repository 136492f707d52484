import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Output files are written to a temporary file beside the destination, fsync'd, and renamed into
/// place only when complete, so an error or an interruption never leaves a partial file.
public final class AtomicFile: @unchecked Sendable {
    public let destination: String
    public let temporaryPath: String
    public let fd: Int32
    private var finished = false

    public init(destination: String, overwrite: Bool) throws {
        self.destination = destination
        if !overwrite, FileManager.default.fileExists(atPath: destination) {
            throw FormatsError.io(file: destination, message: "already exists (use --force to overwrite)")
        }
        let url = URL(fileURLWithPath: destination)
        let dir = url.deletingLastPathComponent().path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw FormatsError.io(file: destination, message: "directory '\(dir)' does not exist")
        }
        AtomicFile.removeStaleTemporaries(dir: dir, name: url.lastPathComponent)
        temporaryPath = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        fd = open(temporaryPath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw FormatsError.io(
                file: destination, message: "cannot create temporary file: \(String(cString: strerror(errno)))")
        }
    }

    /// Temporary files of earlier writers of the same destination that died (SIGKILL, power loss) are removed:
    /// `.NAME.tmp-PID-RANDOM` whose PID is no longer running.
    static func removeStaleTemporaries(dir: String, name: String) {
        let prefix = "." + name + ".tmp-"
        guard let items = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
        for f in items where f.hasPrefix(prefix) {
            let rest = f.dropFirst(prefix.count)
            guard let pidText = rest.split(separator: "-").first, let pid = Int32(pidText), pid > 0 else { continue }
            if pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH { unlink(dir + "/" + f) }
        }
    }

    /// Serialises concurrent writers: the kernel takes the file's inode lock for each buffered write anyway, and a
    /// writer that waits here sleeps (its core goes to other work) where one waiting for the inode lock spins.
    private let writeLock = NSLock()

    /// Writes all of `buffer` at `offset` (positional, thread-safe).
    public func write(_ buffer: UnsafeRawBufferPointer, at offset: Int) throws {
        writeLock.lock()
        defer { writeLock.unlock() }
        var done = 0
        while done < buffer.count {
            let n = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw FormatsError.io(file: destination, message: "write failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { throw FormatsError.io(file: destination, message: "write made no progress") }
            done += n
        }
    }

    public func write(_ data: Data, at offset: Int) throws {
        try data.withUnsafeBytes { try write($0, at: offset) }
    }

    /// Sets the final size up front (so a full disk is likely found early) and checks free space.
    public func reserve(_ size: Int) throws {
        #if os(Linux)
        let r = posix_fallocate(fd, 0, off_t(size))
        if r != 0 && r != EOPNOTSUPP && r != EINVAL {
            throw FormatsError.io(
                file: destination, message: "cannot reserve \(size) bytes: \(String(cString: strerror(r)))")
        }
        #endif
    }

    /// fsync, rename into place, fsync the directory.
    public func commit() throws {
        guard fsync(fd) == 0 else {
            throw FormatsError.io(file: destination, message: "fsync failed: \(String(cString: strerror(errno)))")
        }
        close(fd)
        guard rename(temporaryPath, destination) == 0 else {
            let msg = String(cString: strerror(errno))
            unlink(temporaryPath)
            finished = true
            throw FormatsError.io(file: destination, message: "cannot rename into place: \(msg)")
        }
        finished = true
        let dir = URL(fileURLWithPath: destination).deletingLastPathComponent().path
        let dfd = open(dir, O_RDONLY | O_DIRECTORY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    /// Removes the temporary file.
    public func abandon() {
        guard !finished else { return }
        finished = true
        close(fd)
        unlink(temporaryPath)
    }

    deinit { abandon() }

    /// Writes a whole buffer atomically.
    public static func write(_ data: Data, to path: String, overwrite: Bool = true) throws {
        let f = try AtomicFile(destination: path, overwrite: overwrite)
        do {
            try f.write(data, at: 0)
            try f.commit()
        } catch {
            f.abandon()
            throw error
        }
    }
}
