/// Errors of WeftSync operations. Each names the operation that failed.
///
/// Cancellation is reported with Swift's `CancellationError`, like everywhere in Weft.
public enum SyncError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The timeout of a blocking call ran out before it could complete.
    case timedOut(operation: String)
    /// The channel is closed (for a receive: closed and drained). A send that fails with it did not
    /// deliver its value.
    case closed(operation: String)
    /// The caller does not own the lock it tried to release (or wait on).
    case notOwner(operation: String)
    /// The caller already owns this non-recursive lock: locking again would never return.
    case alreadyOwned(operation: String)
    /// A ``Future`` was completed twice.
    case alreadySet(operation: String)
    /// A ``BroadcastChannel`` receiver fell behind and `missed` messages were overwritten before it
    /// read them; its next receive continues with the oldest message still kept.
    case lagged(missed: Int)

    /// A one-line description naming the operation.
    public var description: String {
        switch self {
        case .timedOut(let operation): "\(operation): timed out"
        case .closed(let operation): "\(operation): channel closed"
        case .notOwner(let operation): "\(operation): the caller does not own the lock"
        case .alreadyOwned(let operation): "\(operation): the caller already owns the lock"
        case .alreadySet(let operation): "\(operation): the future is already set"
        case .lagged(let missed): "BroadcastChannel.receive: lagged behind, \(missed) messages missed"
        }
    }
}
