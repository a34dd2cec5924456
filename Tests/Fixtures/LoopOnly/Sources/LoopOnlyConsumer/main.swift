// A downstream program that depends only on WeftLoop: it runs a timer and a NOP through the loop
// and exits non-zero if either callback did not run exactly once.
import Glibc
import WeftLoop

final class Counter {
    var fired = 0
}

let counter = Counter()
let callback: LoopCallback = { raw, context in
    let counter = Unmanaged<Counter>.fromOpaque(context!).takeUnretainedValue()
    if LoopOperation.pointer(raw).pointee.result == 0 { counter.fired += 1 }
}

do {
    let loop = try Loop()
    let operations = UnsafeMutablePointer<LoopOperation>.allocate(capacity: 2)
    defer { operations.deallocate() }
    operations.initialize(to: .timer(after: .milliseconds(5)))
    (operations + 1).initialize(to: .nop())
    let context = Unmanaged.passUnretained(counter).toOpaque()
    try loop.submit(operations, callback: callback, context: context)
    try loop.submit(operations + 1, callback: callback, context: context)
    try loop.run()
    try loop.close()
    print("LoopOnly: \(counter.fired) callbacks on \(loop.backendKind)")
    if counter.fired != 2 { exit(1) }
} catch {
    print("LoopOnly: \(error)")
    exit(1)
}
