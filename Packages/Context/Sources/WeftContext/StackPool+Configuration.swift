extension StackPool {
    /// Sizes and retention limits of a pool.
    public struct Configuration: Sendable, Equatable {
        /// Usable bytes of a guarded stack (rounded up to whole pages). Default 256 KiB: deep enough
        /// for debug builds of ordinary Swift code; the pages are committed only when touched.
        public var guardedStackSize: Int
        /// Usable bytes of a compact stack (rounded up to whole pages). Default 32 KiB.
        public var compactStackSize: Int
        /// Compact stacks carved from one mapping. Default 64.
        public var compactStacksPerMapping: Int
        /// Released stacks kept warm (memory intact) per class. A stack released beyond this count
        /// gives its memory back to the kernel (`MADV_DONTNEED`) and is kept cold. Default 64.
        public var highWaterMark: Int
        /// Cold guarded stacks kept mapped for reuse; beyond this they are unmapped. Default 1024.
        public var maximumCachedGuardedStacks: Int

        /// The defaults described on each property.
        public init(
            guardedStackSize: Int = 256 * 1024,
            compactStackSize: Int = 32 * 1024,
            compactStacksPerMapping: Int = 64,
            highWaterMark: Int = 64,
            maximumCachedGuardedStacks: Int = 1024
        ) {
            self.guardedStackSize = guardedStackSize
            self.compactStackSize = compactStackSize
            self.compactStacksPerMapping = compactStacksPerMapping
            self.highWaterMark = highWaterMark
            self.maximumCachedGuardedStacks = maximumCachedGuardedStacks
        }
    }

    /// Counters describing a pool at one moment.
    public struct Statistics: Sendable, Equatable {
        /// Guarded stacks handed out and not yet released.
        public var guardedInUse = 0
        /// Compact stacks handed out and not yet released.
        public var compactInUse = 0
        /// Released guarded stacks kept with their memory (reused first).
        public var guardedWarm = 0
        /// Released guarded stacks whose memory went back to the kernel, still mapped.
        public var guardedCold = 0
        /// Released compact stacks kept with their memory.
        public var compactWarm = 0
        /// Released compact stacks whose memory went back to the kernel.
        public var compactCold = 0
        /// Mappings made for compact stacks.
        public var compactMappings = 0
        /// Times a released stack's memory was given back with `MADV_DONTNEED`.
        public var discards = 0
        /// Guarded stacks unmapped because too many were cached.
        public var unmaps = 0
        /// Stacks handed out again from the pool's lists instead of newly mapped (a stack reused
        /// straight from the lock-free slot, the most recently released one, is not counted).
        public var reuses = 0

        /// All counters zero.
        public init() {}
    }
}
