import Glibc

/// A value handed to another thread whose access the demo serialises itself (one resume at a time).
final class UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// Runs `body` on a new OS thread (joined before returning), and reports the thread's name.
struct Thread {
    @discardableResult
    init(name: String, _ body: @escaping @Sendable (String) -> Void) {
        let context = Unmanaged.passRetained(UncheckedBox((name, body))).toOpaque()
        var thread = pthread_t()
        pthread_create(&thread, nil, { argument in
            let box = Unmanaged<UncheckedBox<(String, @Sendable (String) -> Void)>>.fromOpaque(argument!).takeRetainedValue()
            box.value.1(box.value.0)
            return nil
        }, context)
        pthread_join(thread, nil)
    }
}
