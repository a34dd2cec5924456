internal import CWeftContext
import Synchronization

/// Hands out ``Stack``s of both classes and takes them back for reuse. Thread-safe.
///
/// Released stacks are reused last-in first-out, so the most recently touched (cache- and
/// TLB-warm) memory goes out first. The most recently released stack of each class sits in a
/// lock-free slot, so the common release-then-allocate cycle takes no lock. Up to ``Configuration/highWaterMark`` released stacks per
/// class keep their memory; past that, a released stack's pages go back to the kernel with
/// `MADV_DONTNEED` (its address range stays reserved for reuse). Compact-stack mappings are kept for
/// the pool's lifetime; guarded stacks beyond ``Configuration/maximumCachedGuardedStacks`` cold ones
/// are unmapped.
public final class StackPool: Sendable {
    /// The pool used when none is given, with the default ``Configuration``.
    ///
    /// On top of the pool's own lists, each thread keeps the last stack of each class it released
    /// to this pool and gets it back at its next allocation of that class, with no atomic operation
    /// (a thread's cached stacks go back to the pool when the thread ends). ``statistics`` counts
    /// the calling thread's cached stacks as warm and other threads' as in use, and ``trim()``
    /// reaches the calling thread's only.
    public static let shared: StackPool = {
        let pool = StackPool(validated: Configuration(), threadCache: true)
        weft_stack_cache_install(stackCacheThreadEnded)
        return pool
    }()

    /// The sizes and limits this pool was made with (sizes rounded to whole pages).
    public let configuration: Configuration
    let pageSize: Int
    /// Whether released stacks go to the per-thread cache first (the shared pool only: a thread
    /// cache cannot outlive the pool it belongs to, and only the shared pool lives for the process).
    let threadCache: Bool
    let state: Mutex<State>
    /// The most recently released stack of each class (its low address, or 0): the top of the
    /// warm LIFO, outside the lock.
    let guardedTop = Atomic<UInt>(0)
    let compactTop = Atomic<UInt>(0)

    struct State: ~Copyable {
        var guardedWarm: [Stack] = []
        var guardedCold: [Stack] = []
        var compactWarm: [Stack] = []
        var compactCold: [Stack] = []
        var compactMappings: [(base: UInt, bytes: Int)] = []
        /// Guarded stacks currently mapped (in use, warm, cold or in the slot).
        var guardedMapped = 0
        var statistics = Statistics()
    }

    /// Creates a pool.
    /// - Parameter configuration: stack sizes and retention limits.
    /// - Throws: ``StackError/invalidConfiguration(_:)`` for a size below 16 KiB (the record and
    ///   first frames need room), a per-mapping count below 1 or a negative limit.
    public convenience init(configuration: Configuration) throws(StackError) {
        if configuration.guardedStackSize < 16 * 1024 || configuration.compactStackSize < 8 * 1024 {
            throw .invalidConfiguration("guarded stacks need at least 16 KiB and compact stacks 8 KiB")
        }
        if configuration.compactStacksPerMapping < 1 || configuration.highWaterMark < 0
            || configuration.maximumCachedGuardedStacks < 0
        {
            throw .invalidConfiguration("counts must be positive and limits non-negative")
        }
        self.init(validated: configuration, threadCache: false)
    }

    private init(validated configuration: Configuration, threadCache: Bool) {
        let page = Int(weft_page_size())
        var rounded = configuration
        rounded.guardedStackSize = (configuration.guardedStackSize + page - 1) / page * page
        rounded.compactStackSize = (configuration.compactStackSize + page - 1) / page * page
        self.configuration = rounded
        self.pageSize = page
        self.threadCache = threadCache
        self.state = Mutex(State())
    }

    deinit {
        let top = guardedTop.load(ordering: .acquiring)
        if top != 0 {
            _ = weft_stack_unmap(UnsafeMutableRawPointer(bitPattern: top - UInt(pageSize)), configuration.guardedStackSize + pageSize)
        }
        state.withLock { state in
            for stack in state.guardedWarm + state.guardedCold {
                _ = weft_stack_unmap(UnsafeMutableRawPointer(bitPattern: stack.guardAddress), stack.size + stack.guardSize)
            }
            for mapping in state.compactMappings {
                _ = weft_stack_unmap(UnsafeMutableRawPointer(bitPattern: mapping.base), mapping.bytes)
            }
        }
    }

    /// The pool's counters now.
    /// In-use counts are derived (mapped minus cached) so that the lock-free path updates no
    /// counter: a snapshot taken while other threads allocate may be momentarily off by one.
    public var statistics: Statistics {
        let perMapping = configuration.compactStacksPerMapping
        var guardedSlot = guardedTop.load(ordering: .acquiring) != 0 ? 1 : 0
        var compactSlot = compactTop.load(ordering: .acquiring) != 0 ? 1 : 0
        if threadCache {
            guardedSlot += weft_stack_cache_peek(0) != 0 ? 1 : 0
            compactSlot += weft_stack_cache_peek(1) != 0 ? 1 : 0
        }
        return state.withLock { state in
            var statistics = state.statistics
            statistics.guardedWarm += guardedSlot
            statistics.compactWarm += compactSlot
            statistics.guardedInUse = state.guardedMapped - state.guardedWarm.count - state.guardedCold.count - guardedSlot
            statistics.compactInUse = state.compactMappings.count * perMapping - state.compactWarm.count
                - state.compactCold.count - compactSlot
            return statistics
        }
    }

    /// Rebuilds the descriptor of a stack of this pool from its low address.
    func stack(at address: UInt, _ kind: Stack.Kind) -> Stack {
        switch kind {
        case .guarded:
            return Stack(lowAddress: address, size: configuration.guardedStackSize, kind: .guarded,
                         guardAddress: address - UInt(pageSize), guardSize: pageSize)
        case .compact:
            return Stack(lowAddress: address, size: configuration.compactStackSize, kind: .compact,
                         guardAddress: 0, guardSize: 0)
        }
    }

    /// Takes a stack from the pool, mapping new memory when none is free.
    /// - Parameter kind: the class of stack.
    /// - Returns: a stack of ``Configuration/guardedStackSize`` or ``Configuration/compactStackSize`` bytes.
    /// - Throws: ``StackError/mappingLimitReached(limit:mappings:)`` when `vm.max_map_count` stops a new
    ///   mapping, ``StackError/mapFailed(operation:errno:)`` for other mapping failures.
    public func allocate(_ kind: Stack.Kind = .guarded) throws(StackError) -> Stack {
        if threadCache {
            let cached = UInt(weft_stack_cache_take(kind == .guarded ? 0 : 1))
            if cached != 0 { return stack(at: cached, kind) }
        }
        let top: UInt
        switch kind {
        case .guarded: top = guardedTop.exchange(0, ordering: .acquiring)
        case .compact: top = compactTop.exchange(0, ordering: .acquiring)
        }
        if top != 0 { return stack(at: top, kind) }
        let reused: Stack? = state.withLock { state in
            switch kind {
            case .guarded:
                guard let stack = state.guardedWarm.popLast() ?? state.guardedCold.popLast() else { return nil }
                state.statistics.guardedWarm = state.guardedWarm.count
                state.statistics.guardedCold = state.guardedCold.count
                state.statistics.reuses += 1
                return stack
            case .compact:
                guard let stack = state.compactWarm.popLast() ?? state.compactCold.popLast() else { return nil }
                state.statistics.compactWarm = state.compactWarm.count
                state.statistics.compactCold = state.compactCold.count
                state.statistics.reuses += 1
                return stack
            }
        }
        if let reused { return reused }
        switch kind {
        case .guarded: return try mapGuarded()
        case .compact: return try mapCompact()
        }
    }

    /// Gives a stack back for reuse. Call it once per stack, after the context on it is gone.
    /// - Parameter stack: a stack this pool allocated.
    public func release(_ stack: Stack) {
        var stack = stack
        if threadCache && configuration.highWaterMark > 0 {
            let previous = UInt(weft_stack_cache_put(stack.kind == .guarded ? 0 : 1, stack.lowAddress))
            if previous == 0 { return }
            stack = self.stack(at: previous, stack.kind)
        }
        releaseToPool(stack)
    }

    /// `release` past the thread cache: the lock-free slot, then the lists.
    func releaseToPool(_ stack: Stack) {
        var stack = stack
        switch stack.kind {
        case .guarded:
            if configuration.highWaterMark > 0 {
                let previous = guardedTop.exchange(stack.lowAddress, ordering: .acquiringAndReleasing)
                if previous == 0 { return }
                stack = self.stack(at: previous, .guarded)
            }
        case .compact:
            if configuration.highWaterMark > 0 {
                let previous = compactTop.exchange(stack.lowAddress, ordering: .acquiringAndReleasing)
                if previous == 0 { return }
                stack = self.stack(at: previous, .compact)
            }
        }
        // The slot holds one warm stack; the list holds the rest up to the high-water mark.
        let listLimit = configuration.highWaterMark - 1
        let overHighWater: Bool = state.withLock { state in
            switch stack.kind {
            case .guarded:
                if state.guardedWarm.count < listLimit {
                    state.guardedWarm.append(stack)
                    state.statistics.guardedWarm = state.guardedWarm.count
                    return false
                }
                state.statistics.discards += 1
                return true
            case .compact:
                if state.compactWarm.count < listLimit {
                    state.compactWarm.append(stack)
                    state.statistics.compactWarm = state.compactWarm.count
                    return false
                }
                state.statistics.discards += 1
                return true
            }
        }
        guard overHighWater else { return }
        // The syscall runs outside the lock; the stack joins the cold list only afterwards.
        discard(stack)
        let unmap: Bool = state.withLock { state in
            switch stack.kind {
            case .guarded:
                if state.guardedCold.count < configuration.maximumCachedGuardedStacks {
                    state.guardedCold.append(stack)
                    state.statistics.guardedCold = state.guardedCold.count
                    return false
                }
                state.statistics.unmaps += 1
                state.guardedMapped -= 1
                return true
            case .compact:
                state.compactCold.append(stack)
                state.statistics.compactCold = state.compactCold.count
                return false
            }
        }
        if unmap {
            _ = weft_stack_unmap(UnsafeMutableRawPointer(bitPattern: stack.guardAddress), stack.size + stack.guardSize)
        }
    }

    /// Gives the memory of every warm released stack back to the kernel now (they stay reusable).
    public func trim() {
        var slots: [Stack] = []
        if threadCache {
            let guardedCached = UInt(weft_stack_cache_take(0))
            if guardedCached != 0 { slots.append(stack(at: guardedCached, .guarded)) }
            let compactCached = UInt(weft_stack_cache_take(1))
            if compactCached != 0 { slots.append(stack(at: compactCached, .compact)) }
        }
        let guarded = guardedTop.exchange(0, ordering: .acquiring)
        if guarded != 0 { slots.append(stack(at: guarded, .guarded)) }
        let compact = compactTop.exchange(0, ordering: .acquiring)
        if compact != 0 { slots.append(stack(at: compact, .compact)) }
        let warm: [Stack] = state.withLock { state in
            let warm = state.guardedWarm + state.compactWarm + slots
            state.guardedWarm.removeAll()
            state.compactWarm.removeAll()
            state.statistics.guardedWarm = 0
            state.statistics.compactWarm = 0
            return warm
        }
        for stack in warm { discard(stack) }
        state.withLock { state in
            for stack in warm {
                if stack.kind == .guarded { state.guardedCold.append(stack) } else { state.compactCold.append(stack) }
                state.statistics.discards += 1
            }
            state.statistics.guardedCold = state.guardedCold.count
            state.statistics.compactCold = state.compactCold.count
        }
    }

    private func mapGuarded() throws(StackError) -> Stack {
        let size = configuration.guardedStackSize
        var base: UnsafeMutableRawPointer?
        let error = weft_stack_map(size + pageSize, pageSize, &base)
        if error != 0 { throw mappingError(error, operation: "mmap of a guarded stack") }
        let address = UInt(bitPattern: base)
        state.withLock { $0.guardedMapped += 1 }
        return Stack(lowAddress: address + UInt(pageSize), size: size, kind: .guarded, guardAddress: address, guardSize: pageSize)
    }

    /// Compact stacks are laid out one page minus 64 bytes above page boundaries: the canary at
    /// the bottom of stack i then shares a page with the top of stack i-1, so a parked coroutine
    /// whose frames fit in that page keeps exactly one resident page (not a top page plus a canary
    /// page).
    private var compactOffset: Int { pageSize - 64 }

    private func mapCompact() throws(StackError) -> Stack {
        let size = configuration.compactStackSize
        let count = configuration.compactStacksPerMapping
        let bytes = size * count + pageSize
        var base: UnsafeMutableRawPointer?
        let error = weft_stack_map(bytes, 0, &base)
        if error != 0 { throw mappingError(error, operation: "mmap of compact stacks") }
        let address = UInt(bitPattern: base) + UInt(compactOffset)
        let stacks = (0..<count).map {
            Stack(lowAddress: address + UInt($0 * size), size: size, kind: .compact, guardAddress: 0, guardSize: 0)
        }
        return state.withLock { state in
            state.compactMappings.append((UInt(bitPattern: base), bytes))
            state.statistics.compactMappings += 1
            // Highest first so the stack handed out now is the lowest and reuse order stays LIFO.
            state.compactCold.append(contentsOf: stacks.dropFirst().reversed())
            state.statistics.compactCold = state.compactCold.count
            return stacks[0]
        }
    }

    /// Gives back the whole pages inside a stack (a compact stack's partial end pages are shared
    /// with its neighbours and stay).
    private func discard(_ stack: Stack) {
        let page = UInt(pageSize)
        let low = (stack.lowAddress + page - 1) / page * page
        let high = (stack.lowAddress + UInt(stack.size)) / page * page
        if high > low { _ = weft_stack_discard(UnsafeMutableRawPointer(bitPattern: low), Int(high - low)) }
    }

    private func mappingError(_ error: Int32, operation: String) -> StackError {
        if error == 12 /* ENOMEM */ {
            let limit = weft_max_map_count()
            let mappings = weft_map_count()
            // The kernel refuses a new mapping a few short of the limit (it counts splits too).
            if limit > 0 && mappings >= 0 && mappings + 8 >= limit {
                return .mappingLimitReached(limit: limit, mappings: mappings)
            }
        }
        return .mapFailed(operation: operation, errno: error)
    }
}

/// Takes back the stacks a thread still held in the shared pool's cache when it ends.
private let stackCacheThreadEnded: @convention(c) (Int32, UInt) -> Void = { kind, low in
    let pool = StackPool.shared
    pool.releaseToPool(pool.stack(at: low, kind == 0 ? .guarded : .compact))
}
