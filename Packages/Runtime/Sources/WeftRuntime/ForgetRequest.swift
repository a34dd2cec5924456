import Synchronization
import SystemPackage

/// A descriptor that every other executor's loop must forget before it is closed (epoll keeps
/// per-descriptor state per loop); the closing fiber parks until the last loop acknowledges.
final class ForgetRequest: @unchecked Sendable {
    let descriptor: FileDescriptor
    let fiber: FiberCore
    private let remaining: Atomic<Int>

    init(descriptor: FileDescriptor, fiber: FiberCore, count: Int) {
        self.descriptor = descriptor
        self.fiber = fiber
        self.remaining = Atomic(count)
    }

    /// Called by each executor once its loop has forgotten the descriptor; the last one wakes the fiber.
    func acknowledge() {
        if remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { FiberCore.wake(fiber) }
    }
}
