internal import CWeftLoop
import SystemPackage

extension Loop {
    /// Opens a pidfd for a child process (`pidfd_open(2)`), for ``LoopOperation/processWait(_:)``.
    /// The caller closes it.
    /// - Parameter pid: The child's process ID.
    /// - Returns: The pidfd, close-on-exec.
    /// - Throws: ``LoopError`` named `pidfd_open` (`ESRCH` for no such process, `EINVAL` for a bad pid).
    public static func openProcessDescriptor(_ pid: Int32) throws(LoopError) -> FileDescriptor {
        let fd = weft_pidfd_open(pid)
        if fd < 0 { throw LoopError(.init(rawValue: -fd), operation: "pidfd_open") }
        return FileDescriptor(rawValue: fd)
    }
}
