/// The common fields of a `struct statx` filled by ``LoopOperation/statx(directory:path:flags:mask:into:)``.
public struct FileStatus: Sendable, Equatable {
    /// The file's size in bytes (`stx_size`).
    public var size: UInt64
    /// The file type and permission bits (`stx_mode`).
    public var mode: UInt16
    /// The number of hard links (`stx_nlink`).
    public var linkCount: UInt32
    /// The inode number (`stx_ino`).
    public var inode: UInt64
    /// The owner's user ID (`stx_uid`).
    public var userID: UInt32
    /// The owner's group ID (`stx_gid`).
    public var groupID: UInt32
    /// The number of 512-byte blocks allocated (`stx_blocks`).
    public var blocks: UInt64

    /// Reads the fields from a filled `struct statx`.
    /// - Parameter statx: At least ``LoopOperation/statxSize`` bytes written by a completed statx.
    public init(statx: UnsafeRawPointer) {
        // Offsets of the fields in the kernel's struct statx (include/uapi/linux/stat.h).
        linkCount = statx.loadUnaligned(fromByteOffset: 16, as: UInt32.self)
        userID = statx.loadUnaligned(fromByteOffset: 20, as: UInt32.self)
        groupID = statx.loadUnaligned(fromByteOffset: 24, as: UInt32.self)
        mode = statx.loadUnaligned(fromByteOffset: 28, as: UInt16.self)
        inode = statx.loadUnaligned(fromByteOffset: 32, as: UInt64.self)
        size = statx.loadUnaligned(fromByteOffset: 40, as: UInt64.self)
        blocks = statx.loadUnaligned(fromByteOffset: 48, as: UInt64.self)
    }

    /// Whether the file is a directory.
    public var isDirectory: Bool { mode & 0o170000 == 0o040000 }
    /// Whether the file is a regular file.
    public var isRegularFile: Bool { mode & 0o170000 == 0o100000 }
}
