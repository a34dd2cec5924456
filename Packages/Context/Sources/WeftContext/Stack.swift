/// A stack for an ``ExecutionContext``: a reservation of address space whose pages the kernel
/// commits on first touch.
///
/// Stacks come from a ``StackPool`` and go back to the pool that made them with
/// ``StackPool/release(_:)``, exactly once, after the context running on it is gone.
public struct Stack: Sendable, Hashable {
    /// The two classes of stack.
    public enum Kind: Sendable, Hashable {
        /// Its own mapping with a `PROT_NONE` guard page below it: an overflow faults and is
        /// reported with the context's id and stack size. Costs two kernel memory mappings.
        case guarded
        /// Carved with many others from one mapping, no guard page: a canary word at the bottom is
        /// checked at every switch out of the context. For hundreds of thousands of parked contexts.
        case compact
    }

    /// Address of the lowest usable byte (just above the guard page for a guarded stack).
    @usableFromInline let lowAddress: UInt
    /// Usable bytes, from ``lowAddress`` upward.
    public let size: Int
    /// The class of this stack.
    public let kind: Kind
    /// Start of the guard page (guarded stacks) or 0.
    let guardAddress: UInt
    /// Bytes of the guard (guarded stacks) or 0.
    let guardSize: Int

    /// The lowest usable byte of the stack.
    public var bottom: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: lowAddress)! }

    /// One byte past the highest usable byte (the stack grows down from here).
    public var top: UnsafeMutableRawPointer { bottom + size }
}
