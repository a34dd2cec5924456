/// Why a ``StackPool`` could not provide a stack.
public enum StackError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The process reached the kernel's limit on memory mappings (`vm.max_map_count`). Every
    /// guarded stack costs two mappings, so the default limit of 65,530 allows about 32,000 of them.
    /// Raise the limit (`sysctl -w vm.max_map_count=N`), use ``Stack/Kind/compact`` stacks, or
    /// release stacks.
    case mappingLimitReached(limit: Int, mappings: Int)
    /// `mmap` or `mprotect` failed for another reason (usually address space or memory exhausted).
    case mapFailed(operation: String, errno: Int32)
    /// A configured stack size cannot be used.
    case invalidConfiguration(String)

    /// A sentence naming the operation and what to do.
    public var description: String {
        switch self {
        case .mappingLimitReached(let limit, let mappings):
            return "StackPool.allocate: the process holds \(mappings) memory mappings and vm.max_map_count is "
                + "\(limit); each guarded stack needs 2. Raise vm.max_map_count (sysctl -w vm.max_map_count=N), "
                + "use compact stacks, or release stacks."
        case .mapFailed(let operation, let errno):
            return "StackPool.allocate: \(operation) failed with errno \(errno)"
        case .invalidConfiguration(let reason):
            return "StackPool: invalid configuration: \(reason)"
        }
    }
}
